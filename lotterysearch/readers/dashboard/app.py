"""The dashboard's web application: pages, the JSON API under them, mask images and downloads.

``create_app(workspace, token=None)`` builds a Starlette app. Each request opens the store afresh,
read-only (``Store.open(readonly=True)``), so a page polling the API sees every generation a live search
commits (a WAL reader never blocks the writer), and closes it before answering. Only GET and HEAD exist.

What it refuses, each with a one-line message (a page for pages, ``{"error": ...}`` for the API): run ids
that are not store ids, individual ids out of range, layers the mask lacks (404); a missing, foreign or
corrupt store (503); with a token, requests that do not carry it (401); without one, requests whose Host
is not a loopback name (403), so that a web page elsewhere cannot reach a loopback dashboard through DNS
rebinding. Files served are the package's own three (Plotly's bundled ``plotly.min.js``, the page script
and style), looked up by fixed name: no path from a request reaches the file system.
"""

from __future__ import annotations

import functools
import hmac
import json
import logging
import tempfile
from collections.abc import Awaitable, Callable
from http.cookies import SimpleCookie
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from lotterysearch.errors import LotterySearchError, StoreError
from lotterysearch.readers import report
from lotterysearch.readers.dashboard import images, pages, views
from lotterysearch.storage.store import Store

TOKEN_COOKIE = "lotterysearch_dashboard"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
MAX_ID = 2**62  # larger ids are not in any store (and would overflow SQLite's integers)
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:;"
    " connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
_HEADERS = {
    "content-security-policy": _CSP,
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}
log = logging.getLogger(__name__)

Endpoint = Callable[[Request], Awaitable[Response]]


def static_files() -> dict[str, Path]:
    """The only files the app serves, by name."""
    import plotly

    here = resources.files("lotterysearch.readers.dashboard") / "static"
    return {
        "plotly.min.js": Path(plotly.__file__).parent / "package_data" / "plotly.min.js",
        "dashboard.js": Path(str(here / "dashboard.js")),
        "dashboard.css": Path(str(here / "dashboard.css")),
    }


# ---- errors ----------------------------------------------------------------------------------------
def _status(e: LotterySearchError) -> int:
    if isinstance(e, views.NotFound):
        return 404
    return 503 if isinstance(e, StoreError) else 400


def _error(request: Request, status: int, message: str) -> Response:
    if request.url.path.startswith("/api/"):
        return JSONResponse({"error": message}, status_code=status)
    return HTMLResponse(pages.error_page(status, message), status_code=status)


def _handled(fn: Callable[..., Response], *, store: bool = True) -> Endpoint:
    """Run a synchronous endpoint in the thread pool with the store opened read-only for it (``store=False``:
    a page shell that needs none); errors a user can act on become their one-line message, anything else a
    one-line 500 (the traceback goes to the log)."""
    from starlette.concurrency import run_in_threadpool

    @functools.wraps(fn)
    async def endpoint(request: Request) -> Response:
        def call() -> Response:
            if not store:
                return fn(request, **request.path_params)
            with Store.open(request.app.state.workspace, readonly=True) as opened:
                return fn(request, opened, **request.path_params)

        try:
            return await run_in_threadpool(call)
        except LotterySearchError as e:
            return _error(request, _status(e), str(e))
        except Exception as e:
            log.exception("dashboard: %s failed", request.url.path)
            return _error(
                request, 500, f"internal error ({type(e).__name__}); the server log has the details"
            )

    return endpoint


def _id(value: int) -> int:
    if value > MAX_ID:
        raise views.NotFound(f"no individual {value}")
    return value


def _api(payload: Any) -> Response:
    return JSONResponse(payload)


# ---- pages -----------------------------------------------------------------------------------------
def runs_page(request: Request) -> Response:
    """The shell alone, served before a search has made the store: its script polls ``/api/runs``, says why
    there is nothing yet (the API's 503), and draws the runs once the store appears."""
    return HTMLResponse(pages.page("runs", f"runs in {request.app.state.workspace}", {}))


def run_page(request: Request, store: Store, run: str) -> Response:
    views.stored_run(store, run)
    return HTMLResponse(pages.page("run", f"run {run}", {"run": run}))


def mask_page(request: Request, store: Store, run: str, id: int) -> Response:
    views.stored_individual(store, run, _id(id))
    return HTMLResponse(pages.page("mask", f"mask {id} of run {run}", {"run": run, "id": id}))


def _mask_ref(text: str) -> tuple[str, int]:
    """``RUN:ID`` (a compare page's ``a``/``b``) as a validated pair."""
    run, sep, ident = text.rpartition(":")
    if not sep or not ident.isdigit():
        raise views.NotFound(f"'{text[:80]}' is not a mask reference RUN:ID")
    return views.check_run_id(run), _id(int(ident))


def compare_page(request: Request, store: Store) -> Response:
    runs = request.query_params.getlist("run")
    for run in runs:
        views.stored_run(store, run)
    refs = {k: request.query_params[k] for k in ("a", "b") if request.query_params.get(k)}
    for v in refs.values():
        views.stored_individual(store, *_mask_ref(v))
    data = {"runs": ",".join(runs), **refs}
    return HTMLResponse(pages.page("compare", "compare runs and masks", data))


# ---- the JSON API ----------------------------------------------------------------------------------
def api_runs(request: Request, store: Store) -> Response:
    return _api(views.runs_view(store))


def api_run(request: Request, store: Store, run: str) -> Response:
    return _api(views.run_view(store, run))


def api_front(request: Request, store: Store, run: str) -> Response:
    """Exactly ``lotterysearch front RUN --format json [--all]``."""
    views.stored_run(store, run)
    everything = request.query_params.get("all", "") in ("1", "true")
    return Response(report.format_front(store, run, "json", all=everything), media_type="application/json")


def api_mask(request: Request, store: Store, run: str, id: int) -> Response:
    return _api(views.mask_view(store, run, _id(id)))


def api_compare(request: Request, store: Store) -> Response:
    return _api(views.compare_view(store, request.query_params.getlist("run")))


def api_overlap(request: Request, store: Store, run_a: str, id_a: int, run_b: str, id_b: int) -> Response:
    return _api(views.overlap_view(store, (run_a, _id(id_a)), (run_b, _id(id_b))))


# ---- images and downloads --------------------------------------------------------------------------
def _png(data: bytes) -> Response:
    return Response(data, media_type="image/png")


def layer_image(request: Request, store: Store, run: str, id: int, layer: str) -> Response:
    return _png(images.layer_png(views.stored_individual(store, run, _id(id)).mask, layer))


def input_maps(request: Request, store: Store, run: str, id: int, kind: str) -> Response:
    mask = views.stored_individual(store, run, _id(id)).mask
    if kind == "neurons":
        return _png(images.neuron_maps_png(mask))
    if kind == "sum":
        return _png(images.input_sum_png(mask))
    raise views.NotFound(f"no input map '{kind[:20]}' (neurons or sum)")


def download(request: Request, store: Store, run: str, id: int) -> Response:
    """The mask as ``lotterysearch export`` writes it (``report.export_mask``): ``train --mask`` reads it."""
    views.stored_individual(store, run, _id(id))
    with tempfile.TemporaryDirectory(prefix="lotterysearch-dashboard-") as tmp:
        data = report.export_mask(store, run, id, Path(tmp) / "mask.npz").read_bytes()
    name = f"{run}-{id}.npz"
    return Response(
        data,
        media_type="application/octet-stream",
        headers={"content-disposition": f'attachment; filename="{name}"'},
    )


async def static(request: Request) -> Response:
    path = request.app.state.static.get(request.path_params["name"])
    if path is None:
        return _error(request, 404, f"no static file '{request.path_params['name'][:40]}'")
    media = "text/javascript" if path.suffix == ".js" else "text/css"
    return FileResponse(path, media_type=media, headers={"cache-control": "max-age=3600"})


async def not_found(request: Request, exc: Exception) -> Response:
    status = getattr(exc, "status_code", 404)
    if status == 405:
        return _error(request, 405, f"the dashboard is read-only: {request.method} is not served")
    return _error(request, status, f"nothing at {request.url.path[:100]}")


# ---- the guard -------------------------------------------------------------------------------------
class Guard:
    """ASGI middleware: the token (or, without one, a loopback Host), and security headers on every answer.

    The token may come as ``Authorization: Bearer TOKEN``, the cookie set after a first visit, or
    ``?token=TOKEN``; a page opened with the query parameter is redirected to the same address without it
    (so it stays out of history and logs) with the cookie set (HttpOnly, SameSite=Strict).
    """

    def __init__(self, app: Any, token: str | None) -> None:
        self.app, self.token = app, token

    def _ok(self, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(given.encode(), self.token.encode())

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}

        async def secured(message: dict) -> None:
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _ in message.get("headers", [])}
                extra = [(k.encode(), v.encode()) for k, v in _HEADERS.items() if k.encode() not in present]
                message = message | {"headers": [*message.get("headers", []), *extra]}
            await send(message)

        refusal = self._refusal(scope, headers)
        if refusal is not None:
            status, text = refusal
            body = json.dumps({"error": text}) if scope["path"].startswith("/api/") else text + "\n"
            kind = "application/json" if scope["path"].startswith("/api/") else "text/plain; charset=utf-8"
            return await Response(body, status_code=status, media_type=kind)(scope, receive, secured)
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        if self.token and "token" in query and not scope["path"].startswith(("/api/", "/static/")):
            # back to this server's own path: "//host" would be another site's address
            rest = urlencode({k: v for k, v in query.items() if k != "token"}, doseq=True)
            response = Response(
                status_code=303,
                headers={"location": "/" + scope["path"].lstrip("/") + (f"?{rest}" if rest else "")},
            )
            response.set_cookie(TOKEN_COOKIE, self.token, httponly=True, samesite="strict")
            return await response(scope, receive, secured)
        await self.app(scope, receive, secured)

    def _refusal(self, scope: dict, headers: dict[str, str]) -> tuple[int, str] | None:
        if self.token is None:
            host = headers.get("host", "")
            name = host[1:].split("]")[0] if host.startswith("[") else host.rsplit(":", 1)[0]
            if name not in LOOPBACK_HOSTS:
                return 403, f"this dashboard answers on loopback names only ({', '.join(LOOPBACK_HOSTS)})"
            return None
        cookie = SimpleCookie()
        try:
            cookie.load(headers.get("cookie", ""))
        except Exception:  # a malformed cookie header carries no token
            cookie = SimpleCookie()
        auth = headers.get("authorization", "")
        query = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token", [None])
        given = [
            auth[7:] if auth.lower().startswith("bearer ") else None,
            cookie[TOKEN_COOKIE].value if TOKEN_COOKIE in cookie else None,
            query[-1],
        ]
        if any(self._ok(g) for g in given):
            return None
        return (
            401,
            "this dashboard needs its token: open it with ?token=TOKEN or send Authorization: Bearer TOKEN",
        )


# ---- the app ---------------------------------------------------------------------------------------
def create_app(workspace: str | Path, token: str | None = None) -> Any:
    """The dashboard over ``workspace``'s store (opened read-only per request); with ``token``, every
    request must carry it. Returns an ASGI app (Starlette inside ``Guard``)."""
    endpoints = {
        "/": runs_page,
        "/runs/{run}": run_page,
        "/runs/{run}/masks/{id:int}": mask_page,
        "/runs/{run}/masks/{id:int}.npz": download,
        "/runs/{run}/masks/{id:int}/layers/{layer}.png": layer_image,
        "/runs/{run}/masks/{id:int}/inputs/{kind}.png": input_maps,
        "/compare": compare_page,
        "/api/runs": api_runs,
        "/api/runs/{run}": api_run,
        "/api/runs/{run}/front": api_front,
        "/api/runs/{run}/masks/{id:int}": api_mask,
        "/api/compare": api_compare,
        "/api/overlap/{run_a}/{id_a:int}/{run_b}/{id_b:int}": api_overlap,
    }
    routes = [Route(path, _handled(fn, store=fn is not runs_page)) for path, fn in endpoints.items()]
    routes.append(Route("/static/{name}", static))
    app = Starlette(routes=routes, exception_handlers={404: not_found, 405: not_found})
    app.state.workspace = Path(workspace)
    app.state.static = static_files()
    return Guard(app, token)
