"""The dashboard's JSON API, images, downloads and guards, through Starlette's test client over real stores.

Stores are real SQLite files: the hand-made run of ``test_report`` (its front, hypervolume and overlay are
checked there by hand), an IMP run beside it, a real search in this process, and broken workspaces. The
pages as a person sees them are tested in a real browser in ``test_dashboard_browser``. About 15 s.
"""

from __future__ import annotations

import asyncio
import html
import io
import json
import socket
import sqlite3
import warnings

import numpy as np
import pytest
from helpers import tiny_config
from test_report import FRONT_IDS, GEN0, GEN1, HAND_HV, SHAPES, commit, imp_run, mask_for, new_run, png_size

pytest.importorskip(
    "starlette", reason="the dashboard extra is not installed (pip install -e '.[dashboard]')"
)
pytest.importorskip("httpx", reason="starlette's TestClient needs httpx (the test extra)")
with warnings.catch_warnings():  # starlette 1.x prefers httpx2, which is not on every index yet
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

import lotterysearch as ls  # noqa: E402
from lotterysearch.cli import main  # noqa: E402
from lotterysearch.core import overlap  # noqa: E402
from lotterysearch.core.alignment import align, permute_hidden  # noqa: E402
from lotterysearch.core.masks import Mask  # noqa: E402
from lotterysearch.errors import ConfigError  # noqa: E402
from lotterysearch.evolution import pareto
from lotterysearch.readers import report
from lotterysearch.readers.dashboard import create_app, images, views  # noqa: E402
from lotterysearch.readers.dashboard.server import bind, check_bind, is_loopback  # noqa: E402
from lotterysearch.storage.store import STORE_FILENAME, ClassRecord, GenerationRecord, Individual, Store  # noqa: E402

TOKEN = "s3cret-token-of-32-characters-xx"
BASE = "http://127.0.0.1:8000"  # a loopback Host, as a browser on this machine sends


def client(workspace, token: str | None = None, base_url: str = BASE) -> TestClient:
    return TestClient(create_app(workspace, token), base_url=base_url)


@pytest.fixture
def hand(tmp_path):
    """The hand-made search run of ``test_report`` (front 2, 8, 9, 0, 6) and an IMP run beside it."""
    ws = tmp_path / "ws"
    with Store.open(ws, create=True) as store:
        run_id = new_run(store)
        commit(store, run_id, 0, GEN0, hypervolume=0.5)
        commit(store, run_id, 1, GEN1, hypervolume=HAND_HV)
        store.set_status(run_id, "finished")
        imp = imp_run(store)
    return ws, run_id, imp


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    """A real search in this process with successive halving (two rungs), 3 generations."""
    ws = tmp_path_factory.mktemp("real")
    cfg = tiny_config(evaluator="local", fitness={"steps": 60, "successive_halving": True})
    with ls.search(cfg, ws) as run:
        return ws, run.id


def cli_json(capsys, *argv: str):
    assert main(list(argv)) == 0
    out = capsys.readouterr().out
    return json.loads(out)


# ---- the API against the CLI and the library ---------------------------------------------------------
@pytest.mark.parametrize("all_", [False, True])
def test_the_api_front_is_the_cli_front_json(hand, real, capsys, all_):
    for ws, run_id in ((hand[0], hand[1]), (hand[0], hand[2]), real):
        flags = ["--all"] if all_ else []
        expected = cli_json(capsys, "front", run_id, "--workspace", str(ws), "--format", "json", *flags)
        got = client(ws).get(f"/api/runs/{run_id}/front" + ("?all=1" if all_ else ""))
        assert got.status_code == 200 and got.headers["content-type"] == "application/json"
        assert got.json() == expected and expected
    assert [r["id"] for r in client(hand[0]).get(f"/api/runs/{hand[1]}/front").json()] == FRONT_IDS


def test_the_runs_listing_has_status_and_progress(hand):
    ws, run_id, imp = hand
    rows = {r["id"]: r for r in client(ws).get("/api/runs").json()["runs"]}
    assert list(rows) == [run_id, imp]
    demo = rows[run_id]
    # 10 individuals, 9 classes trained; id 3 reused class A (an isomorph hit); the hand front's area
    assert {
        k: demo[k] for k in ("status", "kind", "generations", "individuals", "trained", "isomorph_hits")
    } == {
        "status": "finished",
        "kind": "search",
        "generations": 1,
        "individuals": 10,
        "trained": 9,
        "isomorph_hits": 1,
    }
    assert demo["hypervolume"] == pytest.approx(HAND_HV) and demo["best_accuracy"] == 0.70
    assert demo["planned"] is None  # the hand run's stored config names no generation count
    ticket = rows[imp]
    assert (ticket["kind"], ticket["generations"], ticket["isomorph_hits"]) == ("imp", 1, 0)
    assert ticket["hypervolume"] == pytest.approx(
        pareto.hypervolume([(0.30, 0.02), (0.55, 0.05), (0.72, 1.0)])
    )
    runs_rows = {r["id"]: r for r in report.runs_rows(Store.open(ws, readonly=True))}
    assert {k: demo[k] for k in runs_rows[run_id]} == runs_rows[run_id]


def test_a_run_has_every_mask_its_generations_and_its_rungs(hand, real):
    ws, run_id, _ = hand
    data = client(ws).get(f"/api/runs/{run_id}").json()
    assert data["front_ids"] == FRONT_IDS
    assert sorted(m["id"] for m in data["masks"]) == list(range(10))
    assert {m["id"] for m in data["masks"] if m["is_pareto"]} == {0, 2, 3, 6, 8, 9}
    kinds = {m["id"]: m["kind"] for m in data["masks"]}
    assert [kinds[i] for i in range(10)] == ["seed", "seed", "seed", "seed+", "random", "random"] + [
        "child"
    ] * 4
    assert [(g["gen"], g["hypervolume"]) for g in data["generations"]] == [(0, 0.5), (1, HAND_HV)]
    assert data["run"]["isomorph_hits"] == 1 and data["run"]["front_size"] == 5
    assert data["rungs"] == [{"fidelity": 1.0, "steps": 10, "classes": 9, "individuals": 10}]

    ws, run_id = real
    data = client(ws).get(f"/api/runs/{run_id}").json()
    with Store.open(ws, readonly=True) as store:
        classes, individuals = store.classes(run_id), store.individuals(run_id)
    rungs = {r["fidelity"]: r for r in data["rungs"]}
    assert len(rungs) == 2 and max(rungs) == 1.0  # halving_rungs = 2
    for fidelity, r in rungs.items():
        assert r["classes"] == sum(c.fidelity == fidelity for c in classes.values())
        assert r["individuals"] == sum(i.fidelity == fidelity for i in individuals)
    assert rungs[1.0]["steps"] == 60 and rungs[min(rungs)]["steps"] < 60
    assert [m["fidelity"] for m in sorted(data["masks"], key=lambda m: m["id"])] == [
        i.fidelity for i in individuals
    ]
    assert len(data["generations"]) == 4 and data["run"]["planned"] == 3


def test_a_mask_has_its_layers_class_and_lineage(hand):
    ws, run_id, _ = hand
    http = client(ws)
    data = http.get(f"/api/runs/{run_id}/masks/6").json()
    mask = mask_for(6)
    eff = mask.effective()
    for row in data["layers"]:
        m, e = mask[row["layer"]].numpy(), eff[row["layer"]].numpy()
        assert (row["kept"], row["total"], row["effective_kept"]) == (m.sum(), m.size, e.sum())
        assert row["live_inputs"] == sum(e[:, j].any() for j in range(m.shape[1]))
        assert row["live_outputs"] == sum(e[i].any() for i in range(m.shape[0]))
    assert [r["shape"] for r in data["layers"]] == [list(s) for s in SHAPES.values()]
    assert data["mask"]["origin"] == "child:neuron_crossover+move_mutation" and data["on_front"]
    tree = data["lineage"]
    assert (tree["id"], [p["id"] for p in tree["parents"]]) == (6, [0, 2])
    assert all(p["parents"] == [] and p["origin"].startswith("synflow") for p in tree["parents"])
    # class A: individuals 0 and 3; 3 is the isomorph that reused 0's training
    cls = http.get(f"/api/runs/{run_id}/masks/3").json()["class"]
    assert (cls["key"], cls["members"], cls["isomorph_hits"], cls["member_ids"], cls["trained_by"]) == (
        "A",
        2,
        1,
        [0, 3],
        0,
    )


def test_a_lineage_shows_each_ancestor_once_and_cuts_a_wide_tree():
    def ind(i: int, parents: tuple[int, ...]) -> Individual:
        return Individual("r-001", i, i, b"\x00", parents, "op", "child", "K", 0.5, 0.5, 0.5, True)

    everyone = {0: ind(0, ()), 1: ind(1, (0,)), 2: ind(2, (0, 1)), 3: ind(3, (2, 1))}
    tree = views.lineage(everyone, 3)
    assert [p["id"] for p in tree["parents"]] == [2, 1]
    two, one = tree["parents"]
    assert [(p["id"], p.get("seen", False)) for p in two["parents"]] == [(0, False), (1, True)]
    assert [(p["id"], p.get("seen", False)) for p in one["parents"]] == [(0, True)]
    cut = views.lineage(everyone, 3, limit=2)
    assert [p["id"] for p in cut["parents"]] == [2] and cut["cut"]


def test_download_is_the_exported_mask(hand, tmp_path):
    ws, run_id, _ = hand
    got = client(ws).get(f"/runs/{run_id}/masks/9.npz")
    assert got.status_code == 200
    assert got.headers["content-disposition"] == f'attachment; filename="{run_id}-9.npz"'
    path = tmp_path / "got.npz"
    path.write_bytes(got.content)
    assert Mask.load(path) == mask_for(9)


def decode_png(data: bytes) -> np.ndarray:
    from matplotlib.image import imread

    return imread(io.BytesIO(data), format="png")[..., :3]


def test_layer_images_show_each_weight_pruned_dead_or_effective(hand):
    ws, run_id, _ = hand
    mask = mask_for(6)
    for layer, shape in SHAPES.items():
        got = client(ws).get(f"/runs/{run_id}/masks/6/layers/{layer}.png")
        assert got.status_code == 200 and got.headers["content-type"] == "image/png"
        img = decode_png(got.content)
        k = img.shape[0] // shape[0]
        assert img.shape[:2] == (shape[0] * k, shape[1] * k) and k > 1
        cells = mask[layer].numpy().astype(int) + mask.effective()[layer].numpy().astype(int)
        palette = np.array([images.PRUNED, images.KEPT_DEAD, images.EFFECTIVE])
        assert np.allclose(img[::k, ::k], palette[cells], atol=1 / 255)
    missing = client(ws).get(f"/runs/{run_id}/masks/6/layers/fc9.png")
    assert (
        missing.status_code == 404
        and "no layer 'fc9' in this mask (layers: fc1, fc2, fc3)" in html.unescape(missing.text)
    )


def mnist_run(ws) -> tuple[str, Mask]:
    """A run of a 784-5-3 network with one committed mask whose first layer keeps known pixels."""
    shapes = {"fc1": (5, 784), "fc2": (3, 5)}
    fc1 = np.zeros((5, 784), dtype=bool)
    fc1[0, [0, 29, 783]] = True  # neuron 0: pixels (0, 0), (1, 1), (27, 27)
    fc1[2, [29, 400]] = True  # neuron 2: (1, 1) again, (14, 8)
    fc1[4, 5] = True  # neuron 4: no output, so off every path
    fc2 = np.zeros((3, 5), dtype=bool)
    fc2[:, 0] = fc2[1, 2] = True
    mask = Mask({"fc1": fc1, "fc2": fc2})
    with Store.open(ws, create=True) as store:
        run_id = store.create_run("mnist", "", "{}", "h", 0, (0.0, 1.0), shapes)
        cls = ClassRecord(run_id, "M", "canon-1", 0, mask.pack(), 0.9, 0.1, 0.01, 10, "node", 0.1)
        store.record_evaluation(run_id, cls)
        ind = Individual.of(
            mask,
            run_id=run_id,
            id=0,
            generation=0,
            parents=(),
            operator="",
            origin="synflow:seed=0:rho=100",
            class_key="M",
            accuracy=0.9,
            evaluated=True,
        )
        store.commit_generation(
            run_id, 0, [ind], GenerationRecord(run_id, 0, [0], [0], 0.1, 1, 0, 0.9, {}, 1.0)
        )
    return run_id, mask


def test_mnist_first_layer_maps(tmp_path):
    ws = tmp_path / "ws"
    run_id, mask = mnist_run(ws)
    maps, total = images.first_layer_maps(mask)
    assert maps.shape == (2, 28, 28)  # the live neurons 0 and 2; 4 feeds nothing
    assert [tuple(map(tuple, np.argwhere(m))) for m in maps] == [
        ((0, 0), (1, 1), (27, 27)),
        ((1, 1), (14, 8)),
    ]
    assert total[1, 1] == 2 and total[0, 0] == total[27, 27] == total[14, 8] == 1 and total.sum() == 5
    http = client(ws)
    assert http.get(f"/api/runs/{run_id}/masks/0").json()["mnist_inputs"] is True
    summed = decode_png(http.get(f"/runs/{run_id}/masks/0/inputs/sum.png").content)
    assert summed.shape[:2] == (280, 280)
    from matplotlib import colormaps

    assert np.allclose(summed[15, 15], colormaps["viridis"](1.0)[:3], atol=1 / 255)  # pixel (1, 1): the most
    assert np.allclose(summed[5, 55], colormaps["viridis"](0.0)[:3], atol=1 / 255)  # pixel (0, 5): none
    tiles = decode_png(http.get(f"/runs/{run_id}/masks/0/inputs/neurons.png").content)
    assert tiles.shape[:2] == (3 * 30, 3 * 59)  # two 28-pixel tiles with 1-pixel gaps, 3× enlarged
    assert np.allclose(tiles[3 * 1 + 1, 3 * 1 + 1], images.EFFECTIVE, atol=1 / 255)  # neuron 0, pixel (0, 0)
    assert http.get(f"/runs/{run_id}/masks/0/inputs/other.png").status_code == 404


def test_no_input_maps_for_a_first_layer_that_is_not_28_by_28(hand):
    ws, run_id, _ = hand
    got = client(ws).get(f"/runs/{run_id}/masks/0/inputs/sum.png")
    assert got.status_code == 404 and "the first layer has 8 inputs, not 784" in got.text


def test_overlap_raw_and_aligned_are_the_overlap_modules(hand):
    ws, run_id, _ = hand
    got = client(ws).get(f"/api/overlap/{run_id}/0/{run_id}/6").json()
    a, b = mask_for(0), mask_for(6)
    assert got["raw"] == overlap.jaccard(a, b) and got["chance"] == overlap.chance_jaccard(a, b)
    assert got["aligned"] == overlap.aligned_jaccard(a, b) >= got["raw"]
    assert got["aligned_excess"] == pytest.approx(overlap.excess_overlap(got["aligned"], got["chance"]))
    assert [r["aligned"] for r in got["layers"]] == list(overlap.layer_jaccard(a, align(a, b)).values())
    assert not got["same_class"]
    same = (
        client(ws).get(f"/api/overlap/{run_id}/0/{run_id}/3").json()
    )  # 0 and 3 differ as masks, class A both
    assert same["same_class"] and same["raw"] == overlap.jaccard(mask_for(0), mask_for(3))


def test_aligning_a_permuted_copy_recovers_it():
    a = mask_for(6)
    b = permute_hidden(a, [np.random.default_rng(1).permutation(6), np.random.default_rng(2).permutation(6)])
    assert overlap.jaccard(a, b) < 1 and overlap.jaccard(a, align(a, b)) == 1.0


def test_masks_of_different_models_do_not_overlap(hand):
    ws, run_id, _ = hand
    mnist, _ = mnist_run(ws)
    got = client(ws).get(f"/api/overlap/{run_id}/0/{mnist}/0")
    assert got.status_code == 400
    assert got.json() == {
        "error": f"masks {run_id}/0 and {mnist}/0 have different layer shapes; compare masks of one model"
    }
    missing = client(ws).get(f"/api/overlap/{run_id}/0/{mnist}/7")
    assert missing.status_code == 404 and missing.json()["error"].startswith(
        "no individual 7 in run 'mnist-001'"
    )


def test_compare_counts_the_points_below_the_base_front(hand):
    ws, run_id, imp = hand
    data = client(ws).get(f"/api/compare?run={run_id}&run={imp}").json()
    assert [r["id"] for r in data["runs"]] == [run_id, imp] and data["base"] == run_id
    base, other = data["runs"]
    assert (
        base["below_base_front"] is None and other["below_base_front"] == 2
    )  # tickets 1 and 4 (test_report)
    assert [r["id"] for r in base["front"]] == FRONT_IDS
    assert sorted(p["id"] for p in other["points"]) == [0, 1, 2, 3, 4]
    # SynFlow alone: the front of the pruner's seeds 0 (0.60, 0.10), 1 (0.55, 0.10), 2 (0.40, 0.01); the
    # mutated copy 3 and the random controls are not the pruner's
    assert [r["id"] for r in base["seed_front"]] == [2, 0]
    assert base["seed_hypervolume"] == pytest.approx(0.40 * (0.10 - 0.01) + 0.60 * (1 - 0.10))
    assert client(ws).get("/api/compare").status_code == 404


# ---- live reading ------------------------------------------------------------------------------------
def test_the_api_sees_each_generation_a_live_search_commits(tmp_path):
    run = ls.create_run(tiny_config(evaluator="local", ga={"generations": 2}), tmp_path)
    http = client(tmp_path)
    try:
        (row,) = http.get("/api/runs").json()["runs"]
        assert (row["generations"], row["planned"], row["individuals"]) == (None, 2, 0)
        seen = []
        run.optimize(
            2, progress=lambda g: seen.append(http.get("/api/runs").json()["runs"][0]["generations"])
        )
        assert seen == [0, 1]  # read by another connection between the writer's commits
        assert http.get(f"/api/runs/{run.id}").json()["run"]["generation"] == 1
    finally:
        run.close()


# ---- what it refuses ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "path, message",
    [
        ("/api/runs/nope", "unknown run 'nope' in workspace"),
        ("/api/runs/a%20b", "'a b' is not a run id (letters, digits, '_', '.', '-')"),
        ("/api/runs/demo-001/masks/99", "no individual 99 in run 'demo-001' (its ids run from 0 to 9)"),
        ("/api/runs/demo-001/masks/99999999999999999999999", "no individual 99999999999999999999999"),
        ("/api/runs/demo-001/masks/x", "nothing at /api/runs/demo-001/masks/x"),
        ("/api/nothing", "nothing at /api/nothing"),
    ],
)
def test_bad_path_parameters_are_a_404_with_one_line(hand, path, message):
    got = client(hand[0]).get(path)
    assert got.status_code == 404
    (error,) = got.json().values()
    assert message in error and "\n" not in error


def test_pages_of_unknown_things_are_error_pages(hand):
    http = client(hand[0])
    for path in ("/runs/nope", "/runs/demo-001/masks/99", "/compare?run=nope", "/compare?a=demo-001:x"):
        got = http.get(path)
        assert got.status_code == 404 and got.headers["content-type"].startswith("text/html")
        assert '<p class="error">' in got.text and "Traceback" not in got.text
    assert (
        http.get("/runs/demo-001").status_code == 200
        and http.get("/compare?run=demo-001&a=demo-001:1").status_code == 200
    )


def test_only_reading_methods_are_served(hand):
    got = client(hand[0]).post("/api/runs")
    assert got.status_code == 405 and got.json() == {
        "error": "the dashboard is read-only: POST is not served"
    }


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "no lotterysearch workspace at"),
        (b"", "is not a lotterysearch store (an empty file)"),
        (b"not a database at all" * 10, "is not a lotterysearch store (not an SQLite database)"),
    ],
)
def test_a_missing_or_corrupt_store_is_an_error_the_runs_page_polls(tmp_path, content, message):
    """The runs page is its shell alone (its script polls the API, shows the 503's message, and draws the runs
    once a search creates the store); the API answers 503 with the one-line reason."""
    if content is not None:
        (tmp_path / STORE_FILENAME).write_bytes(content)
    http = client(tmp_path)
    page = http.get("/")
    assert page.status_code == 200 and 'data-page="runs"' in page.text and "dashboard.js" in page.text
    got = http.get("/api/runs")
    assert got.status_code == 503 and message in got.json()["error"] and "Traceback" not in got.text
    if content is not None:
        assert (tmp_path / STORE_FILENAME).read_bytes() == content  # never written to
    else:  # the dashboard keeps serving: once a search creates the store, the runs are there
        with Store.open(tmp_path, create=True) as store:
            new_run(store)
        assert [r["id"] for r in http.get("/api/runs").json()["runs"]] == ["demo-001"]


def test_the_store_is_opened_read_only_and_never_migrated(hand):
    ws = hand[0]
    db = ws / STORE_FILENAME
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    got = client(ws).get("/api/runs")
    assert got.status_code == 503
    assert got.json()["error"] == (
        f"store '{db}' has schema version 1; upgrade it once with `lotterysearch runs --workspace {ws}` before"
        " reading it read-only"
    )
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == ("1",)
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    with Store.open(ws, readonly=True) as store:
        with pytest.raises(Exception, match="attempt to write a readonly database"):
            store.set_status("demo-001", "failed")


def test_only_the_packages_own_files_are_served(hand):
    import plotly

    http = client(hand[0])
    got = http.get("/static/plotly.min.js")
    from pathlib import Path

    assert got.content == (Path(plotly.__file__).parent / "package_data" / "plotly.min.js").read_bytes()
    for path in (
        "/static/..%2F..%2Fpyproject.toml",
        "/static/%2Fetc%2Fpasswd",
        "/static/app.py",
        "/../pyproject.toml",
    ):
        assert http.get(path).status_code == 404, path


def test_every_answer_carries_the_security_headers(hand):
    got = client(hand[0]).get("/")
    assert got.headers["content-security-policy"].startswith("default-src 'none'; script-src 'self'")
    assert got.headers["x-frame-options"] == "DENY" and got.headers["x-content-type-options"] == "nosniff"


def test_without_a_token_only_loopback_host_names_are_answered(hand):
    assert client(hand[0], base_url="http://localhost:8000").get("/api/runs").status_code == 200
    assert client(hand[0], base_url="http://[::1]:8000").get("/api/runs").status_code == 200
    got = client(hand[0], base_url="http://rebound.example:8000").get("/api/runs")
    assert got.status_code == 403
    assert got.json() == {
        "error": "this dashboard answers on loopback names only (127.0.0.1, localhost, ::1)"
    }


def test_with_a_token_every_request_must_carry_it(hand):
    http = client(hand[0], TOKEN, base_url="http://head.example:8000")
    refused = http.get("/api/runs")
    assert refused.status_code == 401
    assert refused.json()["error"] == (
        "this dashboard needs its token: open it with ?token=TOKEN or send Authorization: Bearer TOKEN"
    )
    assert http.get("/", headers={"authorization": "Bearer wrong"}).status_code == 401
    assert http.get("/api/runs", headers={"authorization": f"Bearer {TOKEN}"}).status_code == 200
    assert http.get(f"/api/runs?token={TOKEN}").status_code == 200
    # a page opened with ?token= is redirected to itself without it, the token in an HttpOnly cookie
    first = http.get(f"/runs/demo-001?token={TOKEN}&x=1", follow_redirects=False)
    assert first.status_code == 303 and first.headers["location"] == "/runs/demo-001?x=1"
    cookie = first.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert http.get("/runs/demo-001").status_code == 200  # the client keeps the cookie
    # A path of "//host/..." (which no HTTP client sends as such: raw ASGI) is redirected on this server.
    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    scope = {
        "type": "http",
        "method": "GET",
        "path": "//evil.example/x",
        "query_string": f"token={TOKEN}".encode(),
        "headers": [(b"host", b"head.example:8000")],
    }
    asyncio.run(create_app(hand[0], TOKEN)(scope, receive, send))
    assert sent[0]["status"] == 303
    assert dict(sent[0]["headers"])[b"location"] == b"/evil.example/x"  # never to another site


def test_binding_beyond_loopback_needs_a_token():
    assert [
        is_loopback(h) for h in ("127.0.0.1", "127.3.0.1", "::1", "localhost", "0.0.0.0", "10.0.0.2")
    ] == [
        True,
        True,
        True,
        True,
        False,
        False,
    ]
    assert check_bind("127.0.0.1", None) is None and check_bind("0.0.0.0", TOKEN) == TOKEN
    with pytest.raises(ConfigError) as e:
        check_bind("0.0.0.0", None)
    assert str(e.value) == (
        "binding the dashboard to 0.0.0.0 (not loopback) needs a token: pass --token TOKEN or set"
        " LOTTERYSEARCH_DASHBOARD_TOKEN"
    )
    with pytest.raises(ConfigError, match="at least 16 characters"):
        check_bind("127.0.0.1", "short")


def test_the_cli_refuses_a_public_bind_without_a_token_and_a_port_in_use(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("LOTTERYSEARCH_DASHBOARD_TOKEN", raising=False)
    assert main(["dashboard", "--workspace", str(tmp_path), "--host", "0.0.0.0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "lotterysearch: error: binding the dashboard to 0.0.0.0 (not loopback) needs a token: pass --token TOKEN"
        " or set LOTTERYSEARCH_DASHBOARD_TOKEN"
    ]
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        with pytest.raises(
            ConfigError, match=rf"^cannot listen on 127.0.0.1:{port}: Address already in use$"
        ):
            bind("127.0.0.1", port)
        assert main(["dashboard", "--workspace", str(tmp_path), "--port", str(port)]) == 2
    assert (
        capsys.readouterr().err.strip()
        == f"lotterysearch: error: cannot listen on 127.0.0.1:{port}: Address already in use"
    )


def test_json_values_are_json():
    assert views.json_value({"a": [float("inf"), 1.5, float("nan")], "b": (1, "x")}) == {
        "a": [None, 1.5, None],
        "b": [1, "x"],
    }
    assert (
        views.RUN_ID.fullmatch("demo-001")
        and not views.RUN_ID.fullmatch("../x")
        and not views.RUN_ID.fullmatch("a/b")
    )
    assert png_size(images.layer_png(mask_for(0), "fc3"))[0] >= images.MIN_SIDE


def test_only_the_pages_that_draw_plots_load_plotly(hand):
    """The 4.8 MB bundle is for the run and compare pages; the runs and mask pages draw tables and images."""
    ws, run_id, _ = hand
    http = client(ws)
    pages_ = {
        "/": False,
        f"/runs/{run_id}": True,
        f"/runs/{run_id}/masks/2": False,
        f"/compare?run={run_id}": True,
    }
    for path, plots in pages_.items():
        got = http.get(path)
        assert got.status_code == 200, path
        assert ('src="/static/plotly.min.js"' in got.text) == plots, path
        assert 'src="/static/dashboard.js"' in got.text
