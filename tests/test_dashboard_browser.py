"""The dashboard's pages in a real headless browser: what a person sees.

Debian's ``chromium`` (``/usr/bin/chromium``, installed by ``.ci/run`` with apt) driven by Playwright; the
dashboard is served by uvicorn in a thread on a free port, over a workspace a real search (in this process,
no Ray) writes while the browser watches. Skipped, saying why, where Playwright or the browser is missing.
One browser for the module; about 30 s.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Iterator

import pytest
from conftest import free_port
from helpers import tiny_config

CHROMIUM = os.environ.get("LOTTERYSEARCH_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
playwright_api = pytest.importorskip(
    "playwright.sync_api", reason="Playwright is not installed (pip install -e '.[test]')"
)
pytest.importorskip("uvicorn", reason="the dashboard extra is not installed (pip install -e '.[dashboard]')")
if not os.access(CHROMIUM, os.X_OK):
    pytest.skip(
        f"no chromium at {CHROMIUM}: install Debian's package (apt-get install -y chromium), as .ci/run does",
        allow_module_level=True,
    )

import uvicorn  # noqa: E402

import lotterysearch as ls  # noqa: E402
from lotterysearch.readers.dashboard import create_app  # noqa: E402

TIMEOUT_MS = 30_000


@pytest.fixture(scope="module")
def live(tmp_path_factory) -> Iterator[tuple[ls.Run, str]]:
    """A run of 3 generations with only generation 0 committed, and the dashboard's URL over it."""
    ws = tmp_path_factory.mktemp("dash")
    run = ls.create_run(tiny_config(evaluator="local", ga={"generations": 3}), ws)
    run.optimize(1)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(ws), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the dashboard did not start"
        time.sleep(0.05)
    try:
        yield run, f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        run.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    pg = context.new_page()
    pg.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    yield pg
    context.close()
    assert errors == []  # no script error, no refused resource (the CSP allows only our own)


def generation_cell(page, run_id: str):
    return page.locator(f"table.runs tr[data-id='{run_id}'] td").nth(
        4
    )  # compare, id, kind, status, generation


def test_the_runs_page_shows_a_new_generation_when_the_store_commits_it(live, page):
    run, url = live
    page.goto(url + "/")
    cell = generation_cell(page, run.id)
    playwright_api.expect(cell).to_have_text("0 / 3")
    run.optimize(1)  # generation 1, committed by this process while the page is open
    playwright_api.expect(cell).to_have_text("1 / 3")  # without a reload: the page polls the API
    assert page.evaluate("performance.getEntriesByType('navigation').length") == 1
    row = page.locator(f"table.runs tr[data-id='{run.id}']")
    with ls.open_run(run.workspace, run.id) as again:
        individuals = len(again.individuals())
    playwright_api.expect(row.locator("td").nth(7)).to_have_text(str(individuals))


def test_the_front_is_drawn_and_a_click_opens_the_mask(live, page):
    run, url = live
    page.goto(f"{url}/runs/{run.id}")
    front = page.request.get(f"{url}/api/runs/{run.id}/front").json()
    assert front
    # Plotly draws one SVG path per marker; the front is the last trace.
    traces = page.locator("#front-plot .scatterlayer .trace")
    playwright_api.expect(traces.last.locator("path.point")).to_have_count(len(front))
    everything = page.request.get(f"{url}/api/runs/{run.id}").json()["masks"]
    drawn = sum(traces.nth(i).locator("path.point").count() for i in range(traces.count() - 1))
    assert drawn == sum(m["density"] > 0 and not m["is_pareto"] for m in everything)  # and every other mask
    playwright_api.expect(page.locator("table.front tbody tr")).to_have_count(len(front))

    # Hovering a front point names it; clicking it opens that mask's page.
    point = traces.last.locator("path.point").first
    box = point.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    hover = page.locator(".hoverlayer .hovertext")
    playwright_api.expect(hover).to_contain_text(f"id {front[0]['id']}")
    playwright_api.expect(hover).to_contain_text(front[0]["origin"])
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.wait_for_url(f"{url}/runs/{run.id}/masks/{front[0]['id']}")
    playwright_api.expect(page.locator("h1")).to_have_text(f"mask {front[0]['id']} of run {run.id}")
    images = page.locator("#images img.mask")
    playwright_api.expect(images).to_have_count(3)  # one heatmap per layer of the 16-24-24-4 MLP
    for i in range(3):  # each image loads and decodes: the server drew a PNG
        assert images.nth(i).evaluate("img => img.decode().then(() => img.naturalWidth)") > 0
    playwright_api.expect(page.locator("#lineage a").first).to_have_text(f"#{front[0]['id']}")
    playwright_api.expect(page.locator("#download")).to_have_attribute(
        "href", f"/runs/{run.id}/masks/{front[0]['id']}.npz"
    )


def test_compare_overlays_fronts_and_shows_an_overlap(live, page):
    run, url = live
    page.goto(f"{url}/compare?run={run.id}&a={run.id}:0&b={run.id}:1")
    # the run's points, its front, and its SynFlow seeds' front (the pruner alone)
    playwright_api.expect(page.locator("#compare-plot .scatterlayer .trace")).to_have_count(3)
    playwright_api.expect(page.locator("#compare-plot .legend")).to_contain_text(
        f"{run.id} synflow alone (seeds)"
    )
    expected = page.request.get(f"{url}/api/overlap/{run.id}/0/{run.id}/1").json()
    cells = page.locator("#overlap table.facts td")
    playwright_api.expect(cells.nth(0)).to_have_text(f"{expected['raw']:.4f}")
    playwright_api.expect(cells.nth(1)).to_have_text(f"{expected['aligned']:.4f}")


def test_the_generation_plot_labels_its_axes_within_the_data(live, page):
    """The hypervolume and best-accuracy axes are labelled over the data's own range (a single generation
    once gave an accuracy axis from -0.159 to 0.711 for an accuracy of 0.48), and the lineage and overlap
    plot is drawn."""
    run, url = live
    page.goto(f"{url}/runs/{run.id}")
    data = page.request.get(f"{url}/api/runs/{run.id}").json()
    gens = data["generations"]
    playwright_api.expect(page.locator("#hv-plot .ytick text").first).to_be_visible()

    def ticks(selector: str) -> list[float]:
        texts = page.locator(f"#hv-plot {selector} text").all_text_contents()
        return [float(t.replace("\u2212", "-")) for t in texts if t.strip()]

    for selector, field in ((".ytick", "hypervolume"), (".y2tick", "best_accuracy")):
        values = [g[field] for g in gens]
        lo, hi = min(values), max(values)
        pad = max((hi - lo) * 0.1, abs(hi) * 0.01, 1e-4)
        labels = ticks(selector)
        assert labels, f"no {field} tick labels"
        assert all(lo - pad <= t <= hi + pad for t in labels), (field, labels, lo, hi)
    diag = data["diagnostics"]
    assert [d["gen"] for d in diag] == [g["gen"] for g in gens]
    playwright_api.expect(page.locator("#diag-plot .scatterlayer .trace")).to_have_count(3)
