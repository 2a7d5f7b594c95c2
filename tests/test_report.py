"""Reports read from real stores: the front against a brute-force Pareto set, formats that round-trip, a
valid PNG, an offline HTML page that escapes what the store holds, and exported masks.

Stores are real SQLite files in ``tmp_path`` written through the Store API. Runtime about 10 s.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import math
import struct
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from helpers import tiny_config
from hypothesis import given, settings
from hypothesis import strategies as st

from lotterysearch import api
from lotterysearch.cli import spec_from_mask
from lotterysearch.core.masks import Mask
from lotterysearch.core.models import build_model
from lotterysearch.errors import ConfigError, StoreError
from lotterysearch.evolution import pareto
from lotterysearch.readers import report
from lotterysearch.storage.store import ClassRecord, GenerationRecord, IMPRoundRecord, Individual, Store

SHAPES = {"fc1": (6, 8), "fc2": (6, 6), "fc3": (3, 6)}  # an MLP 8-6-6-3
CONFIG_TOML = '# demo\nname = "demo"\n[ga]\npopulation = 6\n'


def mask_for(i: int) -> Mask:
    rng = np.random.default_rng(i)
    return Mask({n: rng.random(s) < 0.4 for n, s in SHAPES.items()})


def new_run(store: Store, name: str = "demo", config_toml: str = CONFIG_TOML) -> str:
    return store.create_run(name, config_toml, "{}", "0123abcd", 0, (0.0, 1.0), SHAPES)


def commit(
    store: Store,
    run_id: str,
    gen: int,
    individuals: list[dict],
    hypervolume: float = 0.0,
    front: list[int] | None = None,
) -> None:
    """Commit one generation of individuals given as dicts of (id, accuracy, density, key, origin, ...), with
    the front over everything committed so far, as the search loop stores it (or ``front`` as given)."""
    known = store.classes(run_id)
    records = []
    for spec in individuals:
        i, key = spec["id"], spec["key"]
        mask = mask_for(i)
        if key not in known:
            known[key] = ClassRecord(
                run_id, key, "canon-1", i, mask.pack(), spec["accuracy"], 1.0, 0.5, 10, "node-a", 0.1
            )
            store.record_evaluation(run_id, known[key])
        records.append(
            Individual(
                run_id=run_id,
                id=i,
                generation=gen,
                packed=mask.pack(),
                parents=spec.get("parents", ()),
                operator=spec.get("operator", ""),
                origin=spec.get("origin", "child"),
                class_key=key,
                accuracy=spec["accuracy"],
                density=spec["density"],
                effective_density=spec.get("effective_density", spec["density"] / 2),
                evaluated=known[key].individual_id == i,
            )
        )
    ids = [r.id for r in records]
    best = max(r.accuracy for r in records)
    if front is None:
        front = sorted(r.id for r in pareto.front(store.individuals(run_id) + records))
    store.commit_generation(
        run_id, gen, records, GenerationRecord(run_id, gen, ids, front, hypervolume, 1, 0, best, {}, 1.0)
    )


# The hand-made run: seeds, a mutated seed copy (an isomorph duplicate of id 0), random controls, children.
GEN0 = [
    dict(id=0, accuracy=0.60, density=0.10, key="A", origin="synflow:seed=0:rho=10"),
    dict(id=1, accuracy=0.55, density=0.10, key="B", origin="synflow:seed=1:rho=10"),  # dominated by 0
    dict(id=2, accuracy=0.40, density=0.01, key="C", origin="synflow:seed=0:rho=100"),
    dict(id=3, accuracy=0.60, density=0.10, key="A", origin="synflow:seed=0:rho=10+move"),  # duplicate of 0
    dict(id=4, accuracy=0.30, density=0.10, key="D", origin="random:seed=0:rho=10"),  # dominated
    dict(id=5, accuracy=0.12, density=0.01, key="E", origin="random:seed=0:rho=100"),  # dominated by 2
]
GEN1 = [
    dict(
        id=6, accuracy=0.70, density=0.30, key="F", operator="neuron_crossover+move_mutation", parents=(0, 2)
    ),
    dict(id=7, accuracy=0.70, density=0.50, key="G", operator="layer_crossover", parents=(0, 1)),  # dom. by 6
    dict(
        id=8, accuracy=0.40, density=0.01, key="H", operator="clone", parents=(2,)
    ),  # ties with 2, new class
    dict(id=9, accuracy=0.50, density=0.05, key="I", operator="grow_prune_mutation", parents=(1,)),
]
FRONT_IDS = [2, 8, 9, 0, 6]  # by density; 3 is a duplicate of 0 (same class, objectives)
# Staircase area above (0, 1): 0.40·(0.05−0.01) + 0.50·(0.10−0.05) + 0.60·(0.30−0.10) + 0.70·(1−0.30)
HAND_HV = 0.40 * 0.04 + 0.50 * 0.05 + 0.60 * 0.20 + 0.70 * 0.70


@pytest.fixture
def demo(tmp_path: Path) -> tuple[Store, str]:
    store = Store.open(tmp_path / "ws", create=True)
    run_id = new_run(store)
    commit(store, run_id, 0, GEN0, hypervolume=0.5)
    commit(store, run_id, 1, GEN1, hypervolume=HAND_HV)
    store.set_status(run_id, "finished")
    yield store, run_id
    store.close()


def dominated(i: int, objs: list[tuple[float, float]]) -> bool:
    a, d = objs[i]
    return any(b >= a and e <= d and (b > a or e < d) for b, e in objs)


# ---- the front ----------------------------------------------------------------------------------------


def test_front_of_the_hand_run(demo):
    store, run_id = demo
    rows = report.front_rows(store, run_id)
    assert [r["id"] for r in rows] == FRONT_IDS
    assert rows[3] == {
        "id": 0,
        "accuracy": 0.60,
        "density": 0.10,
        "effective_density": 0.05,
        "compression": 10.0,
        "class_key": "A",
        "generation": 0,
        "origin": "synflow:seed=0:rho=10",
    }
    assert rows[4]["origin"] == "child:neuron_crossover+move_mutation"
    assert rows[4]["compression"] == pytest.approx(1 / 0.3)
    assert [r["origin"] for r in rows[:2]] == ["synflow:seed=0:rho=100", "child:clone"]


def test_front_all_marks_every_non_dominated_individual(demo):
    store, run_id = demo
    rows = report.front_rows(store, run_id, all=True)
    assert sorted(r["id"] for r in rows) == list(range(10))
    assert {r["id"] for r in rows if r["is_pareto"]} == {0, 2, 3, 6, 8, 9}  # the duplicate 3 too
    assert [r["density"] for r in rows] == sorted(r["density"] for r in rows)
    assert list(rows[0]) == [*report.FRONT_FIELDS, "is_pareto"]


def test_front_summary_hypervolume_matches_hand_staircase(demo):
    store, run_id = demo
    s = report.run_summary(store, run_id)
    assert s.hypervolume == pytest.approx(HAND_HV, abs=1e-12)
    assert (s.last_generation, len(s.individuals), s.trained, s.isomorph_hits) == (1, 10, 9, 1)
    assert s.best_accuracy == 0.70


def test_front_listing_is_the_front_committed_with_the_last_generation(tmp_path):
    """What a finished generation stored is what the listing shows: read back, not recomputed."""
    with Store.open(tmp_path / "ws", create=True) as store:
        run_id = new_run(store)
        assert pareto.run_front(store, run_id) == [] and report.front_rows(store, run_id) == []
        commit(store, run_id, 0, GEN0)
        assert store.last_generation(run_id).front == (0, 2)  # 3 duplicates 0: stored once
        assert [r.id for r in pareto.run_front(store, run_id)] == [2, 0]
        # a generation that committed another front (an older run's, say): the listing follows it
        commit(store, run_id, 1, GEN1, front=[9, 6])
        assert [r.id for r in pareto.run_front(store, run_id)] == [9, 6]  # by density
        assert [r["id"] for r in report.front_rows(store, run_id)] == [9, 6]
        assert [r["id"] for r in report.run_summary(store, run_id).front] == [9, 6]
        # --all lists every individual, marked against the front over all of them
        rows = report.front_rows(store, run_id, all=True)
        assert {r["id"] for r in rows if r["is_pareto"]} == {0, 2, 3, 6, 8, 9}


# The tiny search cut down further (a 16-12-4 MLP, 4 individuals, 2 generations), in this process.
TINY_RUN = {
    "name": "real",
    "model": "mlp:16-12-4",
    "seed": 1,
    "evaluator": "local",
    "seeding": {"init_seeds": [0], "iterations": 5},
    "ga": {"population": 4, "generations": 2},
    "fitness": {"steps": 8},
}


def test_front_of_a_real_run_is_the_front_over_all_its_individuals(tmp_path):
    """A search in this process (no Ray): the stored front of its last generation is ``pareto.front`` over
    every individual it evaluated, and ``all`` marks every copy of a front point."""
    with api.search(tiny_config(**TINY_RUN), tmp_path / "ws") as run:
        assert run.status == "finished" and run.generation == 2
        individuals = run.individuals()
        expected = pareto.front(individuals)
        rows = report.front_rows(run.store, run.id)
        assert [r["id"] for r in rows] == [r.id for r in expected] and rows
        assert rows == [report.individual_row(r) for r in expected]
        assert [r["id"] for r in report.front_of(individuals)] == [r["id"] for r in rows]
        assert [r.id for r in run.front()] == [r["id"] for r in rows]
        rows_all = report.front_rows(run.store, run.id, all=True)
        assert len(rows_all) == len(individuals)
        marked = {r["id"] for r in rows_all if r["is_pareto"]}
        assert marked == pareto.on_front(individuals)
        points = {(r["accuracy"], r["density"]) for r in rows}
        full = [i for i in individuals if pareto.is_full(i.fidelity)]
        assert marked == {i.id for i in full if i.objectives in points}  # duplicates of front rows too


objective_sets = st.lists(
    st.tuples(
        st.sampled_from([0.1, 0.25, 0.5, 0.5000000000000001, 0.75, 0.9]),  # small grids: many ties
        st.sampled_from([0.01, 0.05, 0.1, 0.3, 1.0]),
        st.sampled_from("ab"),
    ),
    min_size=1,
    max_size=40,
)


def records_of(objs) -> list[Individual]:
    return [
        Individual("r-001", i, 0, b"\x00", (), "", "child", k, a, d, d, True)
        for i, (a, d, k) in enumerate(objs)
    ]


def check_front(objs, rows, rows_all) -> None:
    pairs = [(a, d) for a, d, _ in objs]
    nondominated = {i for i in range(len(objs)) if not dominated(i, pairs)}
    returned = [r["id"] for r in rows]
    assert all(i in nondominated for i in returned)  # every returned row is non-dominated
    triple = {i: objs[i] for i in range(len(objs))}
    by_triple = {triple[i]: i for i in returned}
    assert len(by_triple) == len(returned)  # no duplicate (accuracy, density, class_key)
    for i in nondominated:  # every non-dominated individual is returned, or its first duplicate is
        assert by_triple[triple[i]] == min(j for j in nondominated if triple[j] == triple[i])
    assert [r["density"] for r in rows] == sorted(pairs[i][1] for i in returned)
    assert sorted(r["id"] for r in rows_all) == list(range(len(objs)))
    assert {r["id"] for r in rows_all if r["is_pareto"]} == nondominated


@given(objective_sets)
@settings(max_examples=300, deadline=None)
def test_front_of_random_objectives_is_exactly_the_non_dominated_set(objs):
    records = records_of(objs)
    check_front(objs, report.front_of(records), report.front_of(records, all=True))


@given(objective_sets)
@settings(max_examples=15, deadline=None)
def test_front_rows_from_a_real_store_is_exactly_the_non_dominated_set(objs):
    with tempfile.TemporaryDirectory() as tmp, Store.open(tmp, create=True) as store:
        run_id = new_run(store)
        specs = [dict(id=i, accuracy=a, density=d, key=k) for i, (a, d, k) in enumerate(objs)]
        half = (len(specs) + 1) // 2
        commit(store, run_id, 0, specs[:half])
        if specs[half:]:
            commit(store, run_id, 1, specs[half:])
        check_front(objs, report.front_rows(store, run_id), report.front_rows(store, run_id, all=True))


# ---- runs ------------------------------------------------------------------------------------------


def test_runs_rows(demo):
    store, run_id = demo
    empty = new_run(store, "other")
    rows = report.runs_rows(store)
    assert [list(r) for r in rows] == [list(report.RUN_FIELDS)] * 2
    assert {k: rows[0][k] for k in ("id", "name", "status", "generations", "individuals", "trained")} == {
        "id": run_id,
        "name": "demo",
        "status": "finished",
        "generations": 1,
        "individuals": 10,
        "trained": 9,
    }
    assert rows[0]["best_accuracy"] == 0.70
    assert (rows[0]["steps"], rows[0]["critical_path"]) == (None, None)  # its config says nothing of steps
    assert rows[0]["created"] == store.run(run_id).created
    assert rows[1] | {"created": None} == {
        "id": empty,
        "name": "other",
        "status": "running",
        "generations": None,
        "created": None,
        "individuals": 0,
        "trained": 0,
        "best_accuracy": None,
        "steps": 0,
        "critical_path": 0,
    }
    table = report.format_runs(store).splitlines()
    assert table[0] == f"2 runs in workspace {store.paths.root}"
    assert table[1].split() == list(report.RUN_FIELDS)
    assert table[4].split()[:4] == ["other-001", "other", "running", "-"]
    assert table[4].split()[-5:] == ["0", "0", "-", "0", "0"]


# ---- formats ---------------------------------------------------------------------------------------


def test_format_front_table_is_aligned_with_a_title(demo):
    store, run_id = demo
    lines = report.format_front(store, run_id).splitlines()
    assert lines[0] == (
        "run demo-001 (finished, after generation 1): Pareto front: 5 of 10 evaluated masks, "
        "hypervolume 0.6510"
    )
    assert lines[1:4] == [
        "id  accuracy  density  effective_density  compression  class_key  generation  origin",
        "--  --------  -------  -----------------  -----------  ---------  ----------  ---------------"
        "---------------------",
        " 2    0.4000  0.01000            0.00500        100.0  C                   0  synflow:seed=0:rho=100",
    ]
    assert lines[-1] == (
        " 6    0.7000  0.30000            0.15000          3.3  F                   1  "
        "child:neuron_crossover+move_mutation"
    )
    assert len(lines) == 3 + len(FRONT_IDS)
    all_lines = report.format_front(store, run_id, all=True).splitlines()
    assert all_lines[0].startswith(
        "run demo-001 (finished, after generation 1): all 10 evaluated masks, 5 on"
    )
    assert all_lines[1].split()[-1] == "is_pareto"
    assert [line.split()[-1] for line in all_lines[3:]].count("yes") == 6


def _typed(field: str, text: str):
    if field in ("id", "generation"):
        return int(text)
    if field == "is_pareto":
        return {"true": True, "false": False}[text]
    if field in ("class_key", "origin"):
        return text
    return float(text)


@pytest.mark.parametrize("all_", [False, True])
def test_csv_and_json_round_trip_the_exact_fields(demo, all_):
    store, run_id = demo
    rows = report.front_rows(store, run_id, all=all_)
    fields = [*report.FRONT_FIELDS, "is_pareto"] if all_ else list(report.FRONT_FIELDS)
    text = report.format_front(store, run_id, "csv", all=all_)
    reader = csv.reader(io.StringIO(text))
    assert next(reader) == fields
    assert [{f: _typed(f, v) for f, v in zip(fields, line, strict=True)} for line in reader] == rows
    assert json.loads(report.format_front(store, run_id, "json", all=all_)) == rows


def test_csv_quotes_awkward_strings_and_json_writes_infinity_as_null():
    rows = [{"id": 1, "origin": 'evil,"quoted"\nline', "compression": math.inf, "x": None, "ok": True}]
    back = next(csv.DictReader(io.StringIO(report.format_rows(rows, "csv"))))
    assert back == {"id": "1", "origin": 'evil,"quoted"\nline', "compression": "inf", "x": "", "ok": "true"}
    assert json.loads(report.format_rows(rows, "json")) == [rows[0] | {"compression": None}]
    assert report.format_rows([], "csv", fields=report.FRONT_FIELDS) == ",".join(report.FRONT_FIELDS)
    assert report.format_rows([], "json") == "[]"
    assert report.format_rows([], "table", title="nothing") == "nothing\n(no rows)"


def test_unknown_format_is_a_one_line_config_error(demo):
    store, run_id = demo
    msg = "unknown format 'xml'; use one of table, json, csv"
    with pytest.raises(ConfigError) as e:
        report.format_rows([], "xml")
    assert str(e.value) == msg
    with pytest.raises(ConfigError) as e:
        report.format_front(store, run_id, "xml")
    assert str(e.value) == msg


def test_unknown_run_is_the_stores_one_line_error(demo):
    store, _ = demo
    msg = f"unknown run 'nope-001' in workspace '{store.paths.root}'; known: demo-001"
    for call in (
        lambda: report.front_rows(store, "nope-001"),
        lambda: report.plot_front(store, "nope-001", store.paths.root / "x.png"),
        lambda: report.html_front(store, "nope-001", store.paths.root / "x.html"),
    ):
        with pytest.raises(StoreError) as e:
            call()
        assert str(e.value) == msg
    assert not (store.paths.root / "x.png").exists() and not (store.paths.root / "x.html").exists()


# ---- plot ------------------------------------------------------------------------------------------


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_plot_front_writes_a_png(demo, tmp_path):
    store, run_id = demo
    path = report.plot_front(store, run_id, tmp_path / "plots" / "front.png")
    data = path.read_bytes()
    assert png_size(data) == (1375, 572)  # 12.5 × 5.2 inches at 110 dpi
    assert 20_000 < len(data) < 1_000_000
    assert data.endswith(b"IEND\xaeB`\x82")


def test_plot_of_a_run_with_nothing_committed(demo, tmp_path):
    store, _ = demo
    run_id = new_run(store, "empty")
    assert png_size(report.plot_front(store, run_id, tmp_path / "e.png").read_bytes()) == (1375, 572)


def test_plot_survives_origins_that_look_like_mathtext(demo, tmp_path):
    store, _ = demo
    run_id = new_run(store, "tex")
    commit(store, run_id, 0, [dict(id=0, accuracy=0.5, density=0.1, key="A", origin="$\\frac{$:seed=0")])
    assert png_size(report.plot_front(store, run_id, tmp_path / "t.png").read_bytes()) == (1375, 572)


def test_plot_into_a_missing_directory_that_cannot_be_made(demo, tmp_path):
    store, run_id = demo
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match=r"^cannot write '.*file/x\.png': "):
        report.plot_front(store, run_id, tmp_path / "file" / "x.png")


# ---- HTML ------------------------------------------------------------------------------------------


class Page(HTMLParser):
    """Tags with their attributes, and the text, as a browser's parser sees them."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


HOSTILE_NAME = '<img src="http://evil.example/x.png" onerror=alert(1)>'
HOSTILE_ORIGIN = '</td><script src="https://evil.example/x.js"></script>$\\frac$&amp;'


def test_html_front_is_self_contained_and_escapes_the_store(tmp_path):
    store = Store.open(tmp_path / "ws", create=True)
    run_id = new_run(store, HOSTILE_NAME, config_toml='address = "<b>http://head:6379</b>"\n')
    commit(store, run_id, 0, [*GEN0[:5], GEN0[5] | dict(origin=HOSTILE_ORIGIN, accuracy=0.99)])
    path = report.html_front(store, run_id, tmp_path / "front.html")
    text = path.read_text(encoding="utf-8")
    page = Page(text)
    tags = [t for t, _ in page.tags]
    assert tags.count("img") == 1 and tags.count("script") == 1 and "link" not in tags
    for _tag, attrs in page.tags:  # nothing is loaded from outside the file
        assert not {"src", "href"} & attrs.keys() or attrs.get("src", "").startswith("data:image/png;base64,")
        assert not any(k.startswith("on") for k in attrs)
    assert "@import" not in text and "url(" not in text
    body = "".join(page.text)
    assert HOSTILE_NAME in body and HOSTILE_ORIGIN in body  # shown as text
    assert 'address = "<b>http://head:6379</b>"' in body
    store.close()


def test_html_front_embeds_the_plot_and_the_front(demo, tmp_path):
    store, run_id = demo
    text = report.html_front(store, run_id, tmp_path / "front.html").read_text(encoding="utf-8")
    assert "http://" not in text and "https://" not in text
    (img,) = [a for t, a in Page(text).tags if t == "img"]
    png = base64.b64decode(img["src"].removeprefix("data:image/png;base64,"), validate=True)
    assert png_size(png) == (1375, 572)
    body = "".join(Page(text).text)
    assert CONFIG_TOML in body
    assert "0.651000" in body  # hypervolume
    for i in FRONT_IDS:
        assert f'<td class="num" data-v="{i}">{i}</td>' in text
    assert text.count("<tr><td") == len(FRONT_IDS)


# ---- export ----------------------------------------------------------------------------------------


def test_export_round_trips_the_mask(demo, tmp_path):
    store, run_id = demo
    path = report.export_mask(store, run_id, 9, tmp_path / "out" / "mask.npz")
    loaded = Mask.load(path)
    assert loaded == mask_for(9) and loaded.names == list(SHAPES)
    loaded.check_fits(build_model(spec_from_mask(loaded), 0))  # what ``train --mask`` checks


def test_export_unknown_individual_is_the_stores_error(demo, tmp_path):
    store, run_id = demo
    with pytest.raises(StoreError) as e:
        report.export_mask(store, run_id, 99, tmp_path / "m.npz")
    assert str(e.value) == "no individual 99 in run 'demo-001' (its ids run from 0 to 9)"
    assert not (tmp_path / "m.npz").exists()


# ---- IMP runs and overlays ---------------------------------------------------------------------------

IMP_JSON = json.dumps({"kind": "imp", "imp": {"init_seeds": [0, 1]}})
# (id, seed, round, validation accuracy at early stop, density): ids are round · 2 + trajectory index
TICKETS = [
    (0, 0, 0, 0.72, 1.00),
    (1, 1, 0, 0.68, 1.00),  # below the GA front's (0.30, 0.70)
    (2, 0, 1, 0.55, 0.05),
    (3, 1, 1, 0.50, 0.05),  # ties the GA front's (0.05, 0.50): not below it
    (4, 0, 2, 0.30, 0.02),  # below the GA front's (0.01, 0.40)
]


def imp_run(store: Store, tickets=TICKETS) -> str:
    """An IMP run committed round by round through ``commit_imp_round``, as ``imp_runs`` stores it."""
    run_id = store.create_run("imp", 'kind = "imp"\n', IMP_JSON, "feedbeef", 0, (0.0, 1.0), SHAPES)
    for i, seed, r, acc, density in tickets:
        mask = mask_for(100 + i)
        key = f"K{i}"
        ind = Individual(
            run_id, i, r, mask.pack(), (), "", f"imp:seed={seed}:round={r}", key, acc, density, density, True
        )
        cls = ClassRecord(run_id, key, "canon-1", i, mask.pack(), acc, 0.5, density, 10, "node-a", 0.1)
        es = {"step": 10 * (i + 1), "val_loss": 0.5, "val_accuracy": acc, "test_accuracy": acc - 0.01}
        result = {
            "val_accuracy": acc - 0.02,
            "val_loss": 0.6,
            "steps": 100,
            "test_accuracy": acc - 0.03,
            "test_loss": 0.7,
            "curve": [],
            "early_stop": es,
        }
        store.commit_imp_round(IMPRoundRecord(run_id, seed, r, i, result, None), ind, cls)
    return run_id


def test_an_imp_runs_front_is_the_front_over_its_tickets(demo):
    store, _ = demo
    run_id = imp_run(store)
    assert [i.id for i in pareto.run_front(store, run_id)] == [4, 2, 0]  # by density; 1 and 3 dominated
    assert pareto.run_front(store, run_id) == pareto.front(store.individuals(run_id))
    lines = report.format_front(store, run_id).splitlines()
    assert lines[0] == (
        "run imp-001 (running, 5 IMP rounds committed): Pareto front: 3 of 5 evaluated masks, hypervolume "
        f"{pareto.hypervolume([(0.30, 0.02), (0.55, 0.05), (0.72, 1.0)]):.4f}"
    )
    assert [line.split()[-3:] for line in lines[3:]] == [  # origin, lineage steps, run steps to its round
        ["imp:seed=0:round=2", "100", "500"],  # these hand-made tickets name no parents
        ["imp:seed=0:round=1", "100", "400"],
        ["imp:seed=0:round=0", "100", "200"],
    ]
    rows = {r["id"]: r for r in report.runs_rows(store)}
    assert rows[run_id]["generations"] == 1  # both trajectories have round 1; only seed 0 has round 2
    assert rows[run_id]["individuals"] == 5


def test_imp_ticket_rows_and_table(demo):
    store, _ = demo
    run_id = imp_run(store)
    rows = report.imp_ticket_rows(store, run_id)
    assert [(r["id"], r["seed"], r["round"]) for r in rows] == [
        (0, 0, 0),
        (1, 1, 0),
        (2, 0, 1),
        (3, 1, 1),
        (4, 0, 2),
    ]
    assert rows[2] == {
        "id": 2,
        "seed": 0,
        "round": 1,
        "density": 0.05,
        "effective_density": 0.05,
        "early_stop": 30,
        "val_accuracy": 0.55,
        "test_accuracy": 0.54,
        "is_pareto": True,
    }
    assert [r["is_pareto"] for r in rows] == [True, False, True, False, True]
    lines = report.format_imp_tickets(store, run_id).splitlines()
    assert (
        lines[0]
        == "run imp-001 (running): 5 IMP tickets, 3 on the Pareto front (accuracies at the early-stopping iteration)"
    )
    assert lines[1].split() == list(report.IMP_FIELDS)
    assert lines[5].split() == ["2", "0", "1", "0.05000", "0.05000", "30", "0.5500", "0.5400", "yes"]
    assert json.loads(report.format_imp_tickets(store, run_id, "json"))[4]["early_stop"] == 50


def test_overlay_sets_by_hand(demo):
    """The IMP tickets over the GA front: every point, the IMP front, and those the GA front dominates."""
    store, ga = demo
    run_id = imp_run(store)
    sets = report.overlay_sets(report.run_summary(store, ga), report.run_summary(store, run_id))
    assert (sets.base_run, sets.other_run) == (ga, run_id)
    assert sets.base_front == [(0.01, 0.40), (0.01, 0.40), (0.05, 0.50), (0.10, 0.60), (0.30, 0.70)]
    assert sets.other_points == [(0.02, 0.30), (0.05, 0.55), (0.05, 0.50), (1.0, 0.72), (1.0, 0.68)]
    assert sets.other_front == [(0.02, 0.30), (0.05, 0.55), (1.0, 0.72)]
    assert sets.dominated == [1, 4]
    back = report.overlay_sets(report.run_summary(store, run_id), report.run_summary(store, ga))
    # the GA's points the IMP front dominates: 1 (0.10, 0.55), 4 (0.10, 0.30), 9 (0.05, 0.50), all by the
    # ticket (0.05, 0.55); 5 (0.01, 0.12) is sparser than every ticket
    imp_front = [(0.02, 0.30), (0.05, 0.55), (1.0, 0.72)]
    by_hand = sorted(
        g["id"]
        for g in GEN0 + GEN1
        if any(
            a >= g["accuracy"] and d <= g["density"] and (a > g["accuracy"] or d < g["density"])
            for d, a in imp_front
        )
    )
    assert back.dominated == by_hand == [1, 4, 9]


def read_png(path: Path) -> np.ndarray:
    from matplotlib.image import imread

    return imread(path)


def colour_pixels(img: np.ndarray, hex_colour: str, tol: float = 3 / 255) -> int:
    rgb = np.array([int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5)])
    return int((np.abs(img[..., :3] - rgb) <= tol).all(axis=-1).sum())


def test_plots_of_an_imp_run_and_of_an_overlay_read_back(demo, tmp_path):
    store, ga = demo
    run_id = imp_run(store)
    plain = read_png(report.plot_front(store, ga, tmp_path / "ga.png"))
    over = read_png(report.plot_front(store, ga, tmp_path / "over.png", overlay=(store, run_id)))
    own = read_png(report.plot_front(store, run_id, tmp_path / "imp.png"))
    for img in (plain, over, own):
        assert img.shape == (572, 1375, 4) and img[..., :3].std() > 0.05  # drawn, not blank
    # the overlay's colour is on the overlay plot only; the IMP tickets' colour on the IMP run's plot
    assert colour_pixels(plain, report._OVERLAY_COLOR) == 0 < colour_pixels(over, report._OVERLAY_COLOR)
    assert colour_pixels(own, report._IMP_COLOR) > colour_pixels(plain, report._IMP_COLOR)
    page = report.html_front(store, run_id, tmp_path / "imp.html").read_text(encoding="utf-8")
    assert "<tr><th>IMP rounds committed</th><td>5</td></tr>" in page
    assert page.count("<tr><td") == 3  # the front's three tickets
