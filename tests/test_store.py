"""The workspace store: schema, round-trips, atomic generations, crash safety, foreign files, readers.

Real SQLite files in ``tmp_path``; the crash test kills a real child process with SIGKILL mid-transaction.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import platform
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from lotterysearch.errors import ConfigError
from lotterysearch.settings import RunKind
from lotterysearch.storage.store import (
    APPLICATION_ID,
    RUN_STATUSES,
    SCHEMA_VERSION,
    STORE_FILENAME,
    ClassRecord,
    ConfirmationRecord,
    GenerationRecord,
    IMPRoundRecord,
    Individual,
    Store,
    StoreError,
    workspace_paths,
)

SHAPES = {"fc2": (3, 4), "fc10": (4, 2)}  # not in sorted order: packing order must survive
ALL_BYTES = bytes(range(256))


def new_run(store: Store, name: str = "demo") -> str:
    return store.create_run(
        name,
        config_toml='[ga]\npopulation = 4\nname = "ünïcode"\n',
        config_json='{"ga": {"population": 4}}',
        config_hash="0123456789abcdef",
        seed=7,
        ref_point=(0.0, 1.0),
        shapes=SHAPES,
    )


def a_class(key: str, individual_id: int = 0, run_id: str = "demo-001", **kw) -> ClassRecord:
    fields = dict(
        run_id=run_id,
        key=key,
        algo_version="canon-1",
        individual_id=individual_id,
        representative=ALL_BYTES + key.encode(),
        accuracy=0.5,
        loss=1.25,
        effective_density=0.25,
        steps=115,
        node="node-a",
        wall_time=0.75,
    )
    return ClassRecord(**(fields | kw))


def an_individual(i: int, gen: int, key: str, run_id: str = "demo-001", **kw) -> Individual:
    fields = dict(
        run_id=run_id,
        id=i,
        generation=gen,
        packed=bytes([i % 256]) * 3 + b"\x00\xff",
        parents=(i - 2, i - 1) if i >= 2 else (),
        operator="layer_crossover" if gen else "seed",
        origin="child" if gen else f"synflow:seed={i}:rho=10",
        class_key=key,
        accuracy=0.1 + 0.2,  # not exactly 0.3: floats must round-trip bit for bit
        density=1 / 3,
        effective_density=1e-300,
        evaluated=i % 2 == 0,
    )
    return Individual(**(fields | kw))


def a_generation(gen: int, population, front=None, run_id: str = "demo-001", **kw) -> GenerationRecord:
    fields = dict(
        run_id=run_id,
        gen=gen,
        population=tuple(population),
        front=tuple(front if front is not None else population[:1]),
        hypervolume=0.123456789012345678,
        evaluated=2,
        skipped=1,
        best_accuracy=0.75,
        rng_state={"bit_generator": "PCG64", "state": {"state": 2**127 + 12345, "inc": 3}, "gen": gen},
        elapsed=12.5,
    )
    return GenerationRecord(**(fields | kw))


def commit_simple(store: Store, run_id: str, gen: int, per_gen: int = 2) -> list[int]:
    """Commit generation ``gen`` with ``per_gen`` new individuals of one new class; returns their ids."""
    first = store.next_individual_id(run_id)
    store.record_evaluation(run_id, a_class(f"k{gen}", first, run_id))
    ids = list(range(first, first + per_gen))
    store.commit_generation(
        run_id,
        gen,
        [an_individual(i, gen, f"k{gen}", run_id) for i in ids],
        a_generation(gen, ids, run_id=run_id),
    )
    return ids


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---- schema ---------------------------------------------------------------------------------------
def test_workspace_paths_derive_the_store_file(tmp_path):
    p = workspace_paths(tmp_path / "ws")
    assert p.root == tmp_path / "ws"
    assert p.store == tmp_path / "ws" / STORE_FILENAME


def test_create_makes_directory_and_schema(tmp_path):
    ws = tmp_path / "a" / "ws"
    with Store.open(ws, create=True) as s:
        assert s._db.execute("PRAGMA foreign_keys").fetchone() == (1,)
        assert s._db.execute("PRAGMA synchronous").fetchone() == (2,)  # FULL
    assert sorted(os.listdir(ws)) == [STORE_FILENAME]  # no temporary file left behind
    conn = sqlite3.connect(ws / STORE_FILENAME)
    try:
        assert conn.execute("PRAGMA application_id").fetchone() == (APPLICATION_ID,)
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert dict(conn.execute("SELECT key, value FROM meta"))["schema_version"] == str(SCHEMA_VERSION)
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert tables == {
            "meta",
            "runs",
            "classes",
            "individuals",
            "generations",
            "imp_rounds",
            "confirmations",
            "trained_weights",
        }
    finally:
        conn.close()
    header = (ws / STORE_FILENAME).read_bytes()[:100]
    assert int.from_bytes(header[68:72], "big") == APPLICATION_ID


def test_create_in_existing_directory_and_open_again(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with Store.open(tmp_path, create=True) as s:
        run_id = new_run(s)
    with Store.open(tmp_path, create=True) as s:  # create=True on an existing store just opens it
        assert [r.id for r in s.runs()] == [run_id]
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_missing_workspace_is_an_error_and_nothing_is_created(tmp_path):
    ws = tmp_path / "nope"
    with pytest.raises(StoreError) as e:
        Store.open(ws)
    assert str(e.value) == (
        f"no lotterysearch workspace at '{ws}' (no {STORE_FILENAME}); a search creates one"
    )
    assert not ws.exists()
    with pytest.raises(StoreError, match="no lotterysearch workspace"):
        Store.open(tmp_path, create=False)  # a directory without a store
    assert os.listdir(tmp_path) == []


def test_workspace_that_is_a_file(tmp_path):
    f = tmp_path / "ws"
    f.write_text("x")
    with pytest.raises(StoreError) as e:
        Store.open(f, create=True)
    assert str(e.value) == f"workspace '{f}' is a file, not a directory"
    assert f.read_text() == "x"


def test_closed_store_refuses_work(tmp_path):
    s = Store.open(tmp_path, create=True)
    s.close()
    s.close()  # idempotent
    with pytest.raises(StoreError) as e:
        s.runs()
    assert str(e.value) == f"store '{tmp_path / STORE_FILENAME}' is closed"


# ---- runs -----------------------------------------------------------------------------------------
def test_run_round_trip_and_ids(tmp_path):
    with Store.open(tmp_path, create=True) as s:
        a, b = new_run(s), new_run(s)
        c = new_run(s, "my run/β")
        assert (a, b, c) == ("demo-001", "demo-002", "my-run-001")
        r = s.run(a)
        assert r.name == "demo" and r.status == "running" and r.generations == 0
        assert r.config_toml == '[ga]\npopulation = 4\nname = "ünïcode"\n'
        assert json.loads(r.config_json) == {"ga": {"population": 4}}
        assert r.config_hash == "0123456789abcdef" and r.seed == 7
        assert r.ref_point == (0.0, 1.0)
        assert r.shapes == SHAPES and list(r.shapes) == ["fc2", "fc10"]
        assert set(r.versions) == {
            "torch",
            "ray",
            "deap",
            "networkx",
            "numpy",
            "lotterysearch",
            "python",
            "sqlite",
        }
        assert r.versions["numpy"] == np.__version__
        assert r.versions["python"] == ".".join(map(str, sys.version_info[:3]))
        assert r.created == r.updated
        assert [x.id for x in s.runs()] == [a, b, c]


def test_a_runs_kind_is_a_type_read_from_its_stored_config(tmp_path):
    """A search's config has no kind, an IMP run's says "imp": read back as ``RunKind`` members (compared by
    identity, still equal to the stored strings); a kind this version does not know is a one-line error."""
    with Store.open(tmp_path, create=True) as s:
        search = new_run(s)
        imp = s.create_run("imp", "", json.dumps({"kind": "imp", "name": "imp"}), "0", 0, (0.0, 1.0), SHAPES)
        other = s.create_run("frontier", "", json.dumps({"kind": "frontier"}), "0", 0, (0.0, 1.0), SHAPES)
        assert s.run(search).kind is RunKind.SEARCH and s.run(imp).kind is RunKind.IMP
        assert (s.run(search).kind, s.run(imp).kind) == ("search", "imp")
        assert json.dumps([r.kind for r in s.runs()[:2]]) == '["search", "imp"]'
        with pytest.raises(ConfigError) as e:
            s.run(other).kind  # noqa: B018
        assert (
            str(e.value) == "a run of kind 'frontier': this lotterysearch knows search, imp, cs; upgrade it"
        )


def test_records_are_read_by_column_name(tmp_path):
    """Every stored field comes back in its own field: a run's count of generations (a subquery), an
    individual's mask (a CASE over its class's representative), and the JSON columns of each record."""
    with Store.open(tmp_path, create=True) as s:
        run_id = new_run(s)
        s.record_evaluation(run_id, a_class("a"))
        s.commit_generation(run_id, 0, [an_individual(0, 0, "a")], a_generation(0, [0]))
        run, classes = s.run(run_id), s.classes(run_id)
        gen, ind = s.last_generation(run_id), s.individual(run_id, 0)
    assert (run.generations, run.seed, run.ref_point, run.shapes) == (1, 7, (0.0, 1.0), SHAPES)
    assert {k: dataclasses.replace(c, created=None) for k, c in classes.items()} == {"a": a_class("a")}
    assert dataclasses.replace(gen, created=None) == a_generation(0, [0])
    assert ind == an_individual(0, 0, "a") and ind.packed == an_individual(0, 0, "a").packed


def test_set_status_and_generations_done(tmp_path):
    with Store.open(tmp_path, create=True) as s:
        run_id = new_run(s)
        created = s.run(run_id).updated
        for status in RUN_STATUSES:
            s.set_status(run_id, status)
            assert s.run(run_id).status == status
        assert s.run(run_id).updated >= created
        with pytest.raises(StoreError) as e:
            s.set_status(run_id, "done")
        assert str(e.value) == "run status 'done' is not one of running, finished, failed, interrupted"
        assert s.run_counts(run_id) == {
            "generation": None,
            "individuals": 0,
            "trained": 0,
            "best_accuracy": None,
        }
        commit_simple(s, run_id, 0)
        commit_simple(s, run_id, 1, per_gen=3)
        assert [r.generations for r in s.runs()] == [2]
        assert s.run_counts(run_id) == {  # the aggregates agree with loading everything
            "generation": 1,
            "individuals": 5,
            "trained": 2,
            "best_accuracy": max(r.accuracy for r in s.individuals(run_id)),
        }


def test_unknown_run_messages(tmp_path):
    with Store.open(tmp_path, create=True) as s:
        with pytest.raises(StoreError) as e:
            s.run("demo-001")
        assert (
            str(e.value) == f"unknown run 'demo-001' in workspace '{tmp_path}'; the workspace has no runs yet"
        )
        new_run(s)
        new_run(s, "other")
        for call in (
            lambda: s.run("x"),
            lambda: s.set_status("x", "failed"),
            lambda: s.classes("x"),
            lambda: s.record_evaluation("x", a_class("k", run_id="x")),
            lambda: s.last_generation("x"),
            lambda: s.generations("x"),
            lambda: s.individuals("x"),
            lambda: s.run_counts("x"),
            lambda: s.driving("x").__enter__(),
            lambda: s.individual("x", 0),
            lambda: s.next_individual_id("x"),
            lambda: s.commit_generation("x", 0, [], a_generation(0, [], run_id="x")),
        ):
            with pytest.raises(StoreError) as e:
                call()
            assert str(e.value) == f"unknown run 'x' in workspace '{tmp_path}'; known: demo-001, other-001"


# ---- classes ---------------------------------------------------------------------------------------
def test_class_round_trip(tmp_path):
    with Store.open(tmp_path, create=True) as s:
        run_id = new_run(s)
        recs = [
            a_class("a", accuracy=0.1 + 0.2, loss=math.inf, effective_density=5e-324, attempts=3),
            a_class(
                "b", individual_id=4, accuracy=1.0, loss=0.0, fidelity=0.25, node="10.0.0.2", wall_time=1e9
            ),
            a_class("c", loss=math.nan, representative=b""),
        ]
        for r in recs:
            s.record_evaluation(run_id, r)
        got = s.classes(run_id)
        assert list(got) == ["a", "b", "c"]
        for r in recs[:2]:
            assert got[r.key] == dataclasses.replace(r, created=got[r.key].created)
            assert got[r.key].created is not None
        c = got["c"]
        assert math.isnan(c.loss) and c.representative == b""
        assert dataclasses.replace(c, loss=0.0) == dataclasses.replace(recs[2], loss=0.0, created=c.created)
        assert s.classes(new_run(s)) == {}


def test_class_recorded_twice_only_upgrades_fidelity(tmp_path):
    with Store.open(tmp_path, create=True) as s:
        run_id = new_run(s)
        s.record_evaluation(run_id, a_class("a", fidelity=0.5))
        with pytest.raises(StoreError) as e:
            s.record_evaluation(run_id, a_class("a", fidelity=0.5, accuracy=0.9))
        assert str(e.value) == (
            "class 'a' of run 'demo-001' is already recorded at fidelity 0.5; look classes up before training them"
        )
        assert s.classes(run_id)["a"].accuracy == 0.5
        s.record_evaluation(run_id, a_class("a", fidelity=1.0, accuracy=0.9))
        assert (s.classes(run_id)["a"].accuracy, s.classes(run_id)["a"].fidelity) == (0.9, 1.0)
        with pytest.raises(StoreError) as e:
            s.record_evaluation(run_id, a_class("b", run_id="demo-007"))
        assert str(e.value) == "records of run ['demo-007'] were passed to store for run 'demo-001'"
        assert list(s.classes(run_id)) == ["a"]


# ---- generations and individuals -------------------------------------------------------------------
def test_generation_and_individual_round_trip(tmp_path):
    rng = np.random.default_rng(3)
    rng.random(5)
    with Store.open(tmp_path, create=True) as s:
        run_id = new_run(s)
        s.record_evaluation(run_id, a_class("k"))
        inds = [an_individual(i, 0, "k", parents=[np.int64(1)] if i == 3 else ()) for i in range(4)]
        state = {"numpy": rng.bit_generator.state, "array": np.arange(3), "scalar": np.float64(0.5)}
        gen = a_generation(0, [3, 1, 2, 0], front=[2, 0], rng_state=state)
        s.commit_generation(run_id, 0, inds, gen)
        expected_next = rng.random(3)

        got = s.last_generation(run_id)
        assert got == dataclasses.replace(
            gen, rng_state=json.loads(json.dumps(got.rng_state)), created=got.created
        )
        assert got.population == (3, 1, 2, 0) and got.front == (2, 0)
        assert got.rng_state["array"] == [0, 1, 2] and got.rng_state["scalar"] == 0.5
        restored = np.random.default_rng()
        restored.bit_generator.state = got.rng_state["numpy"]
        np.testing.assert_array_equal(restored.random(3), expected_next)
        assert s.generations(run_id) == [got]

        assert s.individuals(run_id) == inds
        assert s.individuals(run_id)[3].parents == (1,)
        assert s.individuals(run_id, got.population) == [inds[3], inds[1], inds[2], inds[0]]
        assert s.individual(run_id, 2) == inds[2]
        assert s.individual(run_id, 1).accuracy == 0.1 + 0.2
        assert s.individual(run_id, 1).effective_density == 1e-300
        assert s.next_individual_id(run_id) == 4


def test_individuals_hand_back_their_masks(tmp_path):
    """``Individual.of`` measures and packs a real mask; the store's records unpack to the mask stored."""
    from lotterysearch.core.masks import Mask

    g = np.random.default_rng(5)
    # fc2 before fc1, as in SHAPES: the layer order of the run, not sorted names, must come back
    shapes = {"fc2": (5, 7), "fc1": (3, 5)}
    arrays = {n: g.random(shape) < 0.4 for n, shape in shapes.items()}
    arrays["fc2"][4] = True  # hidden neuron 4 is fed ...
    arrays["fc1"][:, 4] = False  # ... but feeds nothing: its weights are live yet not effective
    live = Mask(arrays)
    empty = Mask({n: np.zeros(shape, bool) for n, shape in shapes.items()})
    base = dict(run_id="demo-001", generation=0, parents=(), operator="seed", origin="random:rho=3")
    a = Individual.of(live, id=0, class_key="a", accuracy=0.625, evaluated=True, **base)
    b = Individual.of(empty, id=1, class_key="b", accuracy=0.1, evaluated=False, fidelity=0.5, **base)
    assert a.mask is live and a.packed == live.pack() and a.shapes == shapes
    assert a.density == live.kept() / 50 and a.effective_density == live.effective_density()
    assert a.effective_density < a.density
    assert a.objectives == (0.625, a.density)
    assert a.compression == 50 / live.kept() == live.compression_ratio()
    assert (b.density, b.effective_density, b.compression) == (0.0, 0.0, math.inf)

    with Store.open(tmp_path, create=True) as s:
        run_id = s.create_run("demo", "", "{}", "0", 0, (0.0, 1.0), shapes)
        s.record_evaluation(run_id, a_class("a"))
        s.record_evaluation(run_id, a_class("b", 1))
        s.commit_generation(run_id, 0, [a, b], a_generation(0, [0, 1]))
        got = s.individuals(run_id)
        one = s.individual(run_id, 0)
    assert got == [a, b] and one == a
    for rec, mask in ((got[0], live), (got[1], empty), (one, live)):
        assert rec.shapes == shapes and list(rec.mask.shapes) == ["fc2", "fc1"]
        assert rec.mask == mask and rec.mask is not mask
        assert rec.mask is rec.mask  # unpacked once
    assert got[0].compression == a.compression and got[1].compression == math.inf
    assert got[1].fidelity == 0.5 and not got[1].evaluated

    orphan = dataclasses.replace(a, shapes=None)
    assert orphan == a  # shapes are not compared
    with pytest.raises(StoreError) as e:
        orphan.mask  # noqa: B018
    assert str(e.value) == "individual 0 has no layer shapes to unpack its mask with"


def test_empty_run_has_no_generations(tmp_path):
    with Store.open(tmp_path, create=True) as s:
        run_id = new_run(s)
        assert s.last_generation(run_id) is None
        assert s.generations(run_id) == [] and s.individuals(run_id) == []
        assert s.next_individual_id(run_id) == 0


def test_unknown_individual_messages(tmp_path):
    with Store.open(tmp_path, create=True) as s:
        run_id = new_run(s)
        with pytest.raises(StoreError) as e:
            s.individual(run_id, 0)
        assert str(e.value) == "no individual 0 in run 'demo-001' (it has no individuals yet)"
        commit_simple(s, run_id, 0, per_gen=3)
        with pytest.raises(StoreError) as e:
            s.individual(run_id, 42)
        assert str(e.value) == "no individual 42 in run 'demo-001' (its ids run from 0 to 2)"
        with pytest.raises(StoreError) as e:
            s.individuals(run_id, [2, 9, 0, 7])
        assert str(e.value) == "no individuals [7, 9] in run 'demo-001' (its ids run from 0 to 2)"


def snapshot(s: Store, run_id: str):
    return (s.individuals(run_id), s.generations(run_id), s.next_individual_id(run_id), s.run(run_id).updated)


@pytest.mark.parametrize(
    "case, message",
    [
        (
            "duplicate_in_batch",
            "individual ids [3] already exist in run 'demo-001'; take ids from next_individual_id",
        ),
        (
            "duplicate_committed",
            "individual ids [1] already exist in run 'demo-001'; take ids from next_individual_id",
        ),
        (
            "population_not_committed",
            "generation 1 of run 'demo-001' names individuals [99] that are not committed",
        ),
        ("nan_accuracy_last", "store '{db}': NOT NULL constraint failed: individuals.accuracy"),
        ("nan_hypervolume", "store '{db}': NOT NULL constraint failed: generations.hypervolume"),
        (
            "unrecorded_class",
            "run 'demo-001' has no recorded class ['zz']; record_evaluation before committing",
        ),
        ("gap", "run 'demo-001' expects generation 1 next, not 2"),
        ("again", "run 'demo-001' expects generation 1 next, not 0"),
        ("gen_mismatch", "commit_generation got gen 1 but a GenerationRecord for gen 2"),
        ("not_json", "rng_state cannot be stored as JSON: object is not JSON serialisable"),
        ("wrong_run", "records of run ['demo-002'] were passed to store for run 'demo-001'"),
    ],
)
def test_failed_generation_commit_leaves_nothing(tmp_path, case, message):
    with Store.open(tmp_path, create=True) as s:
        run_id = new_run(s)
        commit_simple(s, run_id, 0)  # ids 0, 1
        s.record_evaluation(run_id, a_class("k1", 2))
        before = snapshot(s, run_id)
        inds = [an_individual(i, 1, "k1") for i in (2, 3, 4)]
        pop, gen, rec_gen, rng = [1, 2, 3, 4], 1, 1, {"ok": 1}
        if case == "duplicate_in_batch":
            inds.append(an_individual(3, 1, "k1"))
        elif case == "duplicate_committed":
            inds.insert(1, an_individual(1, 1, "k1"))
        elif case == "population_not_committed":
            pop.append(99)
        elif case == "nan_accuracy_last":
            inds[-1] = an_individual(4, 1, "k1", accuracy=math.nan)
        elif case == "unrecorded_class":
            inds[1] = an_individual(3, 1, "zz")
        elif case == "gap":
            gen = rec_gen = 2
        elif case == "again":
            gen = rec_gen = 0
        elif case == "gen_mismatch":
            rec_gen = 2
        elif case == "not_json":
            rng = {"f": object()}
        elif case == "wrong_run":
            new_run(s)
            inds[0] = an_individual(2, 1, "k1", run_id="demo-002")
        generation = a_generation(rec_gen, pop, rng_state=rng)
        if case == "nan_hypervolume":
            generation = dataclasses.replace(generation, hypervolume=math.nan)
        with pytest.raises(StoreError) as e:
            s.commit_generation(run_id, gen, inds, generation)
        assert str(e.value) == message.format(db=tmp_path / STORE_FILENAME)
        assert snapshot(s, run_id) == before
        # The store is still usable, and the same ids are free again.
        assert s.next_individual_id(run_id) == 2
        good = [an_individual(i, 1, "k1") for i in (2, 3, 4)]
        s.commit_generation(run_id, 1, good, a_generation(1, [1, 2, 3, 4]))
        assert [g.gen for g in s.generations(run_id)] == [0, 1]
        assert s.individuals(run_id)[2:] == good


def test_reopen_sees_everything(tmp_path):
    with Store.open(tmp_path, create=True) as s:
        a, b = new_run(s), new_run(s, "other")
        for g in range(3):
            commit_simple(s, a, g)
        commit_simple(s, b, 0, per_gen=5)
        s.set_status(a, "finished")
        state = {r: (s.run(r), s.classes(r), s.individuals(r), s.generations(r)) for r in (a, b)}
    with Store.open(tmp_path) as s:
        assert {r: (s.run(r), s.classes(r), s.individuals(r), s.generations(r)) for r in (a, b)} == state
        assert s.run(a).generations == 3 and s.run(a).status == "finished"
        assert s.next_individual_id(a) == 6 and s.next_individual_id(b) == 5


# ---- crash safety ----------------------------------------------------------------------------------
_KILLED_WRITER = textwrap.dedent(
    """
    import os, signal, sys
    from lotterysearch.storage.store import Store
    from tests.test_store import a_class, a_generation, an_individual, commit_simple

    ws, run_id = sys.argv[1], sys.argv[2]
    wal = os.path.join(ws, "lotterysearch.sqlite-wal")
    s = Store.open(ws)
    for g in range(3):
        commit_simple(s, run_id, g)
    s.record_evaluation(run_id, a_class("k3", 6))  # trained in the generation that will be lost
    committed = os.path.getsize(wal)
    print("committed", committed, flush=True)

    def kill_once_uncommitted_pages_reach_the_wal():
        size = os.path.getsize(wal)
        if size > committed + 2_000_000:
            print("killing", size, flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
        return 0

    # 40 masks of 200 kB overflow SQLite's 2 MB page cache, so pages spill into the WAL before COMMIT.
    big = [an_individual(i, 3, "k3", packed=bytes(range(256)) * 800) for i in range(6, 46)]
    s._db.set_progress_handler(kill_once_uncommitted_pages_reach_the_wal, 50)
    s.commit_generation(run_id, 3, big, a_generation(3, list(range(6, 46))))
    print("not killed", flush=True)
    """
)


def test_classes_are_safe_from_a_killed_process_at_once_and_synced_with_the_next_generation(tmp_path):
    """A class commit only writes the WAL (SQLite's NORMAL: a SIGKILL loses nothing committed, see the test
    below); every other commit is synced to disk before it returns (FULL), which syncs the classes too."""
    with Store.open(tmp_path, create=True) as s:
        run_id = new_run(s)
        assert s._db.execute("PRAGMA synchronous").fetchone() == (2,)
        s.record_evaluation(run_id, a_class("k"))
        assert s._db.execute("PRAGMA synchronous").fetchone() == (1,)
        s.record_evaluations(run_id, [a_class("k1"), a_class("k2")])
        assert s._db.execute("PRAGMA synchronous").fetchone() == (1,)
        s.commit_generation(run_id, 0, [an_individual(0, 0, "k")], a_generation(0, [0]))
        assert s._db.execute("PRAGMA synchronous").fetchone() == (2,)
        s.set_status(run_id, "finished")
        assert s._db.execute("PRAGMA synchronous").fetchone() == (2,)


def test_the_wal_is_copied_into_the_database_by_a_thread_not_by_commits(tmp_path):
    """The writer's own automatic checkpoints are off; the checkpointer thread copies committed pages into
    the database file while the store stays open, and a generation commit lets the WAL start afresh."""
    blob = bytes(range(256)) * 130  # 33 kB, a LeNet-300-100 mask's size
    with Store.open(tmp_path, create=True) as s:
        run_id = new_run(s)
        assert s._db.execute("PRAGMA wal_autocheckpoint").fetchone() == (0,)
        db = tmp_path / STORE_FILENAME
        before = db.stat().st_size
        for i in range(200):
            s.record_evaluations(run_id, [a_class(f"k{i}", i, representative=blob + bytes([i]))])
        deadline = time.monotonic() + 30
        while db.stat().st_size < before + 200 * len(blob) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert db.stat().st_size >= before + 200 * len(blob)  # copied while the store is open
        assert s.checkpoint_seconds > 0
        s.commit_generation(run_id, 0, [an_individual(0, 0, "k0")], a_generation(0, [0]))
        s.record_evaluation(run_id, a_class("k-after", 0))
        (frames,) = s._db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1:2]
        assert frames < 100  # the WAL started afresh: it holds the last commit, not the 200 classes
    with Store.open(tmp_path, readonly=True) as reader:
        assert len(reader.classes(run_id)) == 201


def test_sigkill_inside_a_transaction_keeps_exactly_the_committed_generations(tmp_path):
    ws = tmp_path / "ws"
    with Store.open(ws, create=True) as s:
        run_id = new_run(s)
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run(
        [sys.executable, "-c", _KILLED_WRITER, str(ws), run_id],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == -9, proc.stdout + proc.stderr
    lines = proc.stdout.split()
    committed, killed_at = int(lines[1]), int(lines[3])
    assert lines[0] == "committed" and lines[2] == "killing" and killed_at > committed
    assert (ws / f"{STORE_FILENAME}-wal").stat().st_size >= killed_at  # uncommitted frames are on disk

    with Store.open(ws) as s:
        assert [g.gen for g in s.generations(run_id)] == [0, 1, 2]
        assert [i.id for i in s.individuals(run_id)] == [0, 1, 2, 3, 4, 5]
        assert list(s.classes(run_id)) == ["k0", "k1", "k2", "k3"]  # the lost generation's training is kept
        assert s.next_individual_id(run_id) == 6
        assert s.run(run_id).status == "running"
        # Resume: the interrupted generation commits with the same ids.
        s.commit_generation(run_id, 3, [an_individual(6, 3, "k3")], a_generation(3, [5, 6]))
        assert s.run(run_id).generations == 4
    conn = sqlite3.connect(ws / STORE_FILENAME)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    finally:
        conn.close()


# ---- files that are not ours -----------------------------------------------------------------------
def _foreign_sqlite(path: Path, wal: bool) -> None:
    conn = sqlite3.connect(path)
    if wal:
        conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("CREATE TABLE notes (x TEXT)")
    conn.execute("INSERT INTO notes VALUES ('precious')")
    conn.commit()
    conn.close()


def _ours_without_meta(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    conn.execute("CREATE TABLE runs (id TEXT)")
    conn.commit()
    conn.close()


def _truncated_store(path: Path) -> None:
    with Store.open(path.parent, create=True) as s:
        run_id = new_run(s)
        for g in range(5):
            commit_simple(s, run_id, g, per_gen=50)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _newer_schema(path: Path) -> None:
    with Store.open(path.parent, create=True):
        pass
    conn = sqlite3.connect(path)
    conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()


def _short_header(path: Path) -> None:
    path.write_bytes(b"SQLite format 3\x00" + b"\x10\x00")


FOREIGN = {
    "text": (
        lambda p: p.write_text("these are my notes\n" * 50),
        "'{db}' is not a lotterysearch store (not an SQLite database); move it away or use another workspace",
    ),
    "empty": (
        lambda p: p.write_bytes(b""),
        "'{db}' is not a lotterysearch store (an empty file); move it away or use another workspace",
    ),
    "sqlite": (
        lambda p: _foreign_sqlite(p, wal=False),
        "'{db}' is an SQLite database but not a lotterysearch store (application_id 0x0); use another workspace",
    ),
    "sqlite_wal": (
        lambda p: _foreign_sqlite(p, wal=True),
        "'{db}' is an SQLite database but not a lotterysearch store (application_id 0x0); use another workspace",
    ),
    "no_meta": (
        _ours_without_meta,
        "'{db}' is not a lotterysearch store (no meta table); use another workspace",
    ),
    "truncated": (
        _truncated_store,
        "lotterysearch store '{db}' is corrupt (truncated: {size} bytes, its header says {full}); "
        "restore it from a backup",
    ),
    "short_header": (
        _short_header,
        "lotterysearch store '{db}' is corrupt (truncated to 18 bytes); restore it from a backup",
    ),
    "newer_schema": (
        _newer_schema,
        f"store '{{db}}' has schema version 99, newer than this lotterysearch reads ({SCHEMA_VERSION});"
        " upgrade lotterysearch",
    ),
}


@pytest.mark.parametrize("create", [False, True])
@pytest.mark.parametrize("kind", list(FOREIGN))
def test_foreign_or_corrupt_file_is_refused_and_untouched(tmp_path, kind, create):
    db = workspace_paths(tmp_path).store
    make, message = FOREIGN[kind]
    make(db)
    before, listing = sha(db), sorted(os.listdir(tmp_path))
    size = db.stat().st_size
    full = 4096 * int.from_bytes(db.read_bytes()[28:32], "big") if size >= 32 else 0
    with pytest.raises(StoreError) as e:
        Store.open(tmp_path, create=create)
    assert str(e.value) == message.format(db=db, size=size, full=full)
    assert "\n" not in str(e.value)
    assert sha(db) == before
    assert sorted(os.listdir(tmp_path)) == listing  # no -wal / -shm / temporary file beside it


def test_corruption_found_later_is_a_store_error(tmp_path):
    """Damage inside the file (not its header) surfaces as a one-line StoreError when a query meets it."""
    db = workspace_paths(tmp_path).store
    with Store.open(tmp_path, create=True) as s:
        run_id = new_run(s)
        for g in range(4):
            commit_simple(s, run_id, g, per_gen=100)
    with sqlite3.connect(db) as conn:  # the individuals table's root page: not the schema's pages
        (root,) = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'individuals'").fetchone()
    conn.close()
    data = bytearray(db.read_bytes())
    data[4096 * (root - 1) : 4096 * root] = b"\xa5" * 4096  # scramble that page
    db.write_bytes(bytes(data))
    with pytest.raises(StoreError) as e:
        with Store.open(tmp_path, readonly=True) as s:  # a reader does not check the whole file first
            s.individuals(run_id)
    assert str(e.value) == (
        f"lotterysearch store '{db}' is corrupt (database disk image is malformed); restore it from a backup"
    )
    before = sha(db)
    with pytest.raises(StoreError) as e:  # a writer does, and writes nothing
        Store.open(tmp_path)
    assert str(e.value).startswith(f"lotterysearch store '{db}' is damaged (SQLite's quick_check: Page ")
    assert str(e.value).endswith("); it was not written to; restore it from a backup")
    assert "\n" not in str(e.value) and sha(db) == before
    assert sorted(os.listdir(tmp_path)) == [db.name]


def test_a_store_that_fails_only_the_integrity_check_is_not_resumed(tmp_path):
    """A scrambled page that a resume never reads (the empty confirmations table's): every query of the runs
    listing and a resume still works, so only ``PRAGMA quick_check`` on opening for writing stops a resumed
    run from writing beside the damage."""
    db = workspace_paths(tmp_path).store
    with Store.open(tmp_path, create=True) as s:
        run_id = new_run(s)
        commit_simple(s, run_id, 0, per_gen=20)
    with sqlite3.connect(db) as conn:
        (root,) = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'confirmations'").fetchone()
        (page,) = conn.execute("PRAGMA page_size").fetchone()
    data = bytearray(db.read_bytes())
    data[(root - 1) * page : root * page] = b"\xa5" * page
    db.write_bytes(bytes(data))
    with Store.open(tmp_path, readonly=True) as s:
        assert s.run(run_id).status == "running" and len(s.individuals(run_id)) == 20
    before = sha(db)
    with pytest.raises(StoreError) as e:
        Store.open(tmp_path)
    assert str(e.value).startswith(f"lotterysearch store '{db}' is damaged (SQLite's quick_check: ")
    assert "\n" not in str(e.value) and sha(db) == before


# ---- concurrent readers ----------------------------------------------------------------------------
def test_open_read_transaction_does_not_block_the_writer(tmp_path):
    with Store.open(tmp_path, create=True) as s:
        run_id = new_run(s)
        commit_simple(s, run_id, 0)
        reader = sqlite3.connect(workspace_paths(tmp_path).store, isolation_level=None, timeout=30)
        try:
            reader.execute("BEGIN")
            assert reader.execute("SELECT COUNT(*) FROM generations").fetchone() == (1,)
            t0 = time.monotonic()
            commit_simple(s, run_id, 1)  # in a rollback journal this would wait for the reader
            assert time.monotonic() - t0 < 5
            assert reader.execute("SELECT COUNT(*) FROM generations").fetchone() == (1,)  # its snapshot
            reader.execute("COMMIT")
            assert reader.execute("SELECT COUNT(*) FROM generations").fetchone() == (2,)
        finally:
            reader.close()
        with Store.open(tmp_path) as other:  # a second Store reads while the first is open
            assert other.run(run_id).generations == 2


_WRITER = textwrap.dedent(
    """
    import sys, time
    from lotterysearch.storage.store import Store
    from tests.test_store import commit_simple

    with Store.open(sys.argv[1]) as s:
        for g in range(int(sys.argv[3])):
            commit_simple(s, sys.argv[2], g)
            time.sleep(0.01)
    """
)


def test_reader_process_during_writes(tmp_path):
    """``lotterysearch runs`` / ``front`` in another process while a search commits generations."""
    n = 40
    with Store.open(tmp_path, create=True) as s:
        run_id = new_run(s)
    root = Path(__file__).resolve().parents[1]
    writer = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(tmp_path), run_id, str(n)],
        cwd=root,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen = []
    try:
        while True:
            done = writer.poll() is not None
            with Store.open(tmp_path) as r:
                last = r.last_generation(run_id)
                if last is not None:
                    front = r.individuals(run_id, last.front)
                    assert [i.id for i in front] == list(last.front)
                    assert r.next_individual_id(run_id) >= 2 * (last.gen + 1)
                seen.append(r.run(run_id).generations)
            if done:
                break
            time.sleep(0.002)  # a polling reader, not a busy loop
    finally:
        _, err = writer.communicate(timeout=60)
    assert writer.returncode == 0, err
    assert seen == sorted(seen) and seen[-1] == n
    assert len(set(seen)) >= 3  # reads interleaved with the writer's commits


# ---- the driver lock -------------------------------------------------------------------------------
HOLD_LOCK = r"""
import sys, time
from lotterysearch.storage.store import Store
with Store.open(sys.argv[1]) as s, s.driving(sys.argv[2]):
    print("locked", flush=True)
    time.sleep(600)
"""


def test_one_driver_per_run_and_a_killed_driver_leaves_no_stale_lock(tmp_path):
    with Store.open(tmp_path, create=True) as s:
        run_id, other = new_run(s), new_run(s, "other")
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(tmp_path), run_id], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline() == "locked\n"
        with Store.open(tmp_path) as s:
            with pytest.raises(StoreError) as e, s.driving(run_id):
                pass
            assert str(e.value) == (
                f"run '{run_id}' is being driven by pid {holder.pid} on {platform.node()}; stop that process"
                " or wait for it to end"
            )
            with s.driving(other):  # runs lock independently
                pass
            holder.kill()  # SIGKILL: no cleanup runs, the OS drops the lock
            holder.wait(30)
            with s.driving(run_id):
                with Store.open(tmp_path) as s2, pytest.raises(StoreError), s2.driving(run_id):
                    pass  # held by this process now: a second holder in the same process is refused too
            with s.driving(run_id):  # released at the end of the block
                pass
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(30)
    assert sorted(os.listdir(tmp_path / "locks")) == sorted([f"{run_id}.lock", f"{other}.lock"])


# ---- schema version 2: IMP rounds and confirmations ------------------------------------------------------
def test_a_version_1_store_gains_the_new_tables_on_open_and_keeps_its_runs(tmp_path):
    ws = tmp_path / "ws"
    with Store.open(ws, create=True) as s:
        run_id = new_run(s)
    conn = sqlite3.connect(ws / STORE_FILENAME)  # what version 1 wrote: no IMP or confirmation tables
    conn.executescript(
        "DROP TABLE imp_rounds; DROP TABLE confirmations; UPDATE meta SET value = '1' WHERE key = 'schema_version';"
    )
    conn.close()
    with Store.open(ws) as s:
        assert s.run(run_id).id == run_id
        assert s.imp_rounds(run_id) == [] and s.confirmations(run_id) == []
    conn = sqlite3.connect(ws / STORE_FILENAME)
    try:
        assert dict(conn.execute("SELECT key, value FROM meta"))["schema_version"] == str(SCHEMA_VERSION)
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert {"imp_rounds", "confirmations"} <= tables
    finally:
        conn.close()


def test_imp_rounds_and_confirmations_round_trip(tmp_path):
    with Store.open(tmp_path, create=True) as s:
        run_id = new_run(s)
        ind = an_individual(0, 0, "k0")
        rec = IMPRoundRecord(run_id, 7, 0, 0, {"val_accuracy": 0.5, "early_stop_step": 300}, b"\x00\x01")
        s.commit_imp_round(rec, ind, a_class("k0", 0))
        (back,) = s.imp_rounds(run_id)
        assert (back.trajectory, back.round, back.individual_id, back.result) == (7, 0, 0, rec.result)
        assert back.pruned == b"\x00\x01"
        assert s.individuals(run_id) == [ind] and list(s.classes(run_id)) == ["k0"]
        with pytest.raises(
            StoreError, match=rf"^round 0 of IMP trajectory 7 of run '{run_id}' is already committed$"
        ):
            s.commit_imp_round(rec, an_individual(1, 0, "k0"), a_class("k0", 1))
        s.commit_imp_round(IMPRoundRecord(run_id, 7, 1, 1, {}), an_individual(1, 1, "k0"), a_class("k0", 1))
        assert [r.round for r in s.imp_rounds(run_id)] == [0, 1] and len(s.classes(run_id)) == 1
        assert s.imp_rounds(run_id)[1].pruned is None  # the last round prunes nothing

        own = ConfirmationRecord(run_id, 1, "own", 7, "p1", {"test_accuracy": 0.9})
        s.record_confirmation(own)
        s.record_confirmation(ConfirmationRecord(run_id, 1, "reinit", 1000, "p1", {"test_accuracy": 0.8}))
        s.record_confirmation(ConfirmationRecord(run_id, 1, "own", 7, "p2", {"test_accuracy": 0.95}))
        assert [(c.init, c.seed, c.protocol) for c in s.confirmations(run_id)] == [
            ("own", 7, "p1"),
            ("own", 7, "p2"),
            ("reinit", 1000, "p1"),
        ]
        assert [c.result for c in s.confirmations(run_id, protocol="p1")] == [
            {"test_accuracy": 0.9},
            {"test_accuracy": 0.8},
        ]
        with pytest.raises(StoreError, match=r"is already confirmed \(own, seed 7\) under this protocol$"):
            s.record_confirmation(own)
        with pytest.raises(StoreError, match=rf"^no individual 9 in run '{run_id}'"):
            s.record_confirmation(ConfirmationRecord(run_id, 9, "own", 7, "p1", {}))


# ---- schema version 3: each mask written once ------------------------------------------------------------
def stored_lengths(ws: Path) -> dict[int, int]:
    """Bytes each individual's row holds for its mask, read past the store."""
    conn = sqlite3.connect(ws / STORE_FILENAME)
    try:
        return dict(conn.execute("SELECT id, length(mask) FROM individuals ORDER BY id"))
    finally:
        conn.close()


def test_a_mask_equal_to_its_class_representative_is_stored_once(tmp_path):
    rep, other = ALL_BYTES + b"k", ALL_BYTES[::-1] + b"k"
    trained = an_individual(0, 0, "k", packed=rep, evaluated=True)
    hit = an_individual(1, 0, "k", packed=other, evaluated=False)
    with Store.open(tmp_path, create=True) as s:
        run_id = new_run(s)
        s.record_evaluation(run_id, a_class("k", representative=rep))
        s.commit_generation(run_id, 0, [trained, hit], a_generation(0, [0, 1]))
        assert stored_lengths(tmp_path) == {0: 0, 1: len(other)}
        assert s.masks_stored_whole(run_id) == 1
        assert s.individuals(run_id) == [trained, hit] and s.individual(run_id, 0).packed == rep
        assert s.individuals(run_id, [1, 0]) == [hit, trained]
        with Store.open(tmp_path, readonly=True) as reader:
            assert reader.individuals(run_id) == [trained, hit]
        # a new representative (a longer training of another member) leaves its members' masks as they were
        s.record_evaluation(run_id, a_class("k", 2, representative=other, fidelity=2.0))
        assert stored_lengths(tmp_path) == {0: len(rep), 1: len(other)}
        assert s.individuals(run_id) == [trained, hit]
        s.commit_generation(run_id, 1, [an_individual(2, 1, "k", packed=other)], a_generation(1, [2]))
        assert stored_lengths(tmp_path)[2] == 0 and s.individual(run_id, 2).packed == other
        assert (s.masks_stored_whole(run_id), s.masks_stored_whole(run_id, since_generation=1)) == (2, 0)
        with pytest.raises(StoreError, match="^unknown run 'nope'"):
            s.masks_stored_whole("nope")
        with pytest.raises(StoreError) as e:
            s.commit_generation(run_id, 2, [an_individual(3, 2, "k", packed=b"")], a_generation(2, [3]))
        assert str(e.value) == f"individuals [3] of run '{run_id}' have an empty mask"


def test_a_version_2_store_reads_as_it_is_and_is_upgraded_by_a_writer(tmp_path):
    """Version 2 stored every mask whole: readers take it unchanged, a writer only renumbers it."""
    rep = ALL_BYTES + b"k"
    inds = [an_individual(0, 0, "k", packed=rep), an_individual(1, 0, "k")]
    with Store.open(tmp_path, create=True) as s:
        run_id = new_run(s)
        s.record_evaluation(run_id, a_class("k", representative=rep))
        s.commit_generation(run_id, 0, inds, a_generation(0, [0, 1]))
    conn = sqlite3.connect(tmp_path / STORE_FILENAME)  # what version 2 wrote: the mask itself
    with conn:
        conn.execute("UPDATE individuals SET mask = ? WHERE id = 0", (rep,))
        conn.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    conn.close()
    with Store.open(tmp_path, readonly=True) as reader:
        assert reader.individuals(run_id) == inds
    assert stored_lengths(tmp_path) == {0: len(rep), 1: len(inds[1].packed)}
    with Store.open(tmp_path) as s:
        assert s.individuals(run_id) == inds
        s.commit_generation(run_id, 1, [an_individual(2, 1, "k", packed=rep)], a_generation(1, [2]))
    conn = sqlite3.connect(tmp_path / STORE_FILENAME)
    try:
        assert (
            dict(conn.execute("SELECT key, value FROM meta"))["schema_version"] == "6" == str(SCHEMA_VERSION)
        )
    finally:
        conn.close()
    assert stored_lengths(tmp_path) == {0: len(rep), 1: len(inds[1].packed), 2: 0}


# ---- schema version 4: classes' trained weights -----------------------------------------------------------
def test_a_class_keeps_the_weights_of_its_current_training_only(tmp_path):
    with Store.open(tmp_path, create=True) as s:
        run_id = new_run(s)
        s.record_evaluation(run_id, a_class("k", weights=b"\x01\x02", fidelity=0.5))
        s.record_evaluations(run_id, [a_class("j")])
        assert s.trained_weights(run_id, "k") == b"\x01\x02"
        assert s.trained_weights(run_id, "j") is None and s.trained_weights(run_id, "nope") is None
        s.record_evaluation(run_id, a_class("k", weights=b"\x03\x04", fidelity=1.0))  # promoted
        assert s.trained_weights(run_id, "k") == b"\x03\x04"
        assert s.classes(run_id)["k"].weights is None  # read on demand only: a class list stays small
    with Store.open(tmp_path, create=True) as s:
        s.record_evaluation(run_id, a_class("j", fidelity=2.0))
        assert s.trained_weights(run_id, "k") == b"\x03\x04" and s.trained_weights(run_id, "j") is None
        s.record_evaluation(
            run_id, a_class("k", fidelity=2.0)
        )  # a training without weights drops the old ones
        assert s.trained_weights(run_id, "k") is None


def test_a_version_3_store_gains_the_trained_weights_table_when_a_writer_opens_it(tmp_path):
    with Store.open(tmp_path, create=True) as s:
        run_id = new_run(s)
    conn = sqlite3.connect(tmp_path / STORE_FILENAME)
    with conn:
        conn.execute("DROP TABLE trained_weights")
        conn.execute("UPDATE meta SET value = '3' WHERE key = 'schema_version'")
    conn.close()
    with Store.open(tmp_path, readonly=True) as reader:  # read as it is
        assert [r.id for r in reader.runs()] == [run_id]
    with Store.open(tmp_path) as s:
        s.record_evaluation(run_id, a_class("k", weights=b"\x05\x06"))
        assert s.trained_weights(run_id, "k") == b"\x05\x06"
    conn = sqlite3.connect(tmp_path / STORE_FILENAME)
    try:
        assert dict(conn.execute("SELECT key, value FROM meta"))["schema_version"] == str(SCHEMA_VERSION)
    finally:
        conn.close()


# ---- read-only storage ---------------------------------------------------------------------------
_READ_AS_ANOTHER_USER = """
import os, sys
from lotterysearch.storage.store import Store
from lotterysearch.errors import StoreError
if os.geteuid() == 0:  # root writes anywhere: read as nobody, after the imports
    os.setgid(65534)
    os.setuid(65534)
try:
    with Store.open(sys.argv[1], readonly=True) as s:
        print("runs", *[r.id for r in s.runs()])
except StoreError as e:
    print("error", e)
"""


def _read_only_workspace(make) -> Path:  # noqa: ANN001 - a function of the workspace path
    """A workspace on storage the reading process cannot write: a directory of mode 555 in /tmp (reachable
    by user nobody, which pytest's own 700 temporary tree is not)."""
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="lotterysearch-ro-"))
    root.chmod(0o755)
    make(root / "ws")
    (root / "ws").chmod(0o555)
    return root


@pytest.mark.parametrize("pending", [False, True])
def test_a_store_on_read_only_storage_is_read_immutable_or_refused_with_why(pending):
    import shutil

    def make(ws: Path) -> None:
        with Store.open(ws, create=True) as s:
            new_run(s)
        if pending:  # a commit still in the WAL, whose shared-memory file is gone (a copy, a reboot)
            code = (
                "import os, sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.execute('PRAGMA wal_autocheckpoint=0');"
                " c.execute(\"UPDATE runs SET status = 'failed'\"); c.commit(); os._exit(0)"
            )
            subprocess.run([sys.executable, "-c", code, str(workspace_paths(ws).store)], check=True)
            (ws / f"{STORE_FILENAME}-shm").unlink()

    root = _read_only_workspace(make)
    try:
        ws = root / "ws"
        db = workspace_paths(ws).store
        p = subprocess.run(
            [sys.executable, "-c", _READ_AS_ANOTHER_USER, str(ws)], capture_output=True, text=True, timeout=60
        )
        assert p.returncode == 0, p.stderr
        if not pending:
            assert p.stdout == "runs demo-001\n"
        else:
            wal = (ws / f"{STORE_FILENAME}-wal").stat().st_size
            assert p.stdout == (
                f"error store '{db}' is on storage this user cannot write, and {wal} bytes of its commits are"
                " still in its -wal file, which SQLite reads only where it can write; open it once where it is"
                " writable (lotterysearch runs --workspace DIR) or copy the workspace\n"
            )
        assert sorted(os.listdir(ws)) == (
            [STORE_FILENAME, f"{STORE_FILENAME}-wal"] if pending else [STORE_FILENAME]
        )
    finally:
        (root / "ws").chmod(0o755)
        shutil.rmtree(root)


def test_genes_round_trip_and_a_version_4_store_gains_their_column(tmp_path):
    """A child's strength gene and batch order come back as stored; a version-4 store (no genes column) reads
    with no genes, and a writer adds the column, keeping every row."""
    genes = {"strength": [0.1 + 0.2, 0.49], "order": 2**62 - 1}
    with Store.open(tmp_path, create=True) as s:
        run_id = new_run(s)
        s.record_evaluation(run_id, a_class("k"))
        s.commit_generation(run_id, 0, [an_individual(0, 0, "k")], a_generation(0, [0]))
        s.commit_generation(run_id, 1, [an_individual(1, 1, "k", genes=genes)], a_generation(1, [1]))
        assert [i.genes for i in s.individuals(run_id)] == [None, genes]
    conn = sqlite3.connect(tmp_path / STORE_FILENAME)  # what version 4 wrote: no genes column
    with conn:
        conn.execute("ALTER TABLE individuals DROP COLUMN genes")
        conn.execute("UPDATE meta SET value = '4' WHERE key = 'schema_version'")
    conn.close()
    with Store.open(tmp_path, readonly=True) as reader:
        assert [i.genes for i in reader.individuals(run_id)] == [None, None]
        assert reader.individual(run_id, 1) == an_individual(1, 1, "k")
    with Store.open(tmp_path) as s:
        s.commit_generation(run_id, 2, [an_individual(2, 2, "k", genes=genes)], a_generation(2, [2]))
        assert [i.genes for i in s.individuals(run_id)] == [None, None, genes]
