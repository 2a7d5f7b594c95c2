"""The compute ledger: FLOPs on kept weights against hand counts, a generation's ledger by hand (successive
halving, an isomorph skip, a class reused at a lower rung, two init seeds), a whole search against the
trainings it reported, lineage and run steps, an IMP run of 2 inits × 3 rounds with rewinding, a
confirmation, and a version-4 store that gains the ledger. Real training, in process, on small real data."""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pytest
from helpers import tiny_config, toml_of

import lotterysearch as ls
from lotterysearch import api
from lotterysearch.core.masks import Mask
from lotterysearch.core.models import build_model
from lotterysearch.evolution.loop import SearchLoop
from lotterysearch.evolution.problem import Candidate, MaskProblem
from lotterysearch.readers import report
from lotterysearch.readers.dashboard import views
from lotterysearch.runs.ledger import Ledger, lineage_steps, parallel, run_compute, sequential
from lotterysearch.settings import TrainingConfig, parse_imp_config
from lotterysearch.storage.store import STORE_FILENAME, Individual, Store
from lotterysearch.training.compaction import work
from lotterysearch.training.family import family_of


# ---- FLOPs ------------------------------------------------------------------------------------------
def mask_of(model, kept: dict[str, int], seed: int = 0) -> Mask:
    """A mask of ``model`` keeping exactly ``kept[layer]`` weights of each layer, at random places."""
    rng = np.random.default_rng(seed)
    layers = {}
    for name, shape in Mask.ones(model).shapes.items():
        flat = np.zeros(int(np.prod(shape)), dtype=bool)
        flat[rng.choice(flat.size, kept[name], replace=False)] = True
        layers[name] = flat.reshape(shape)
    return Mask(layers)


def test_training_flops_of_a_tiny_mlp_and_a_tiny_conv_are_the_hand_counts() -> None:
    mlp = build_model("mlp:4-3-2", 0)  # fc1 3x4, fc2 2x3
    m = mask_of(mlp, {"fc1": 5, "fc2": 4})
    assert family_of("mlp:4-3-2").training_flops(m, mlp, 10) == 6 * (5 + 4) * 10  # 540
    # conv1 2x1x3x3 on 6x6 (padding 1: 36 output positions), a 2x2 pool to 2x3x3 = 18 features, fc1 4x18, fc2 3x4
    conv = build_model("conv:6x6x1:2-M:4-3", 0)
    c = mask_of(conv, {"conv1": 7, "fc1": 30, "fc2": 5})
    assert family_of("conv:6x6x1:2-M:4-3").training_flops(c, conv, 8) == 6 * 8 * (7 * 36 + 30 + 5)  # 13 776
    # the dense count is the family's own estimate of a step's work (6·B multiply-adds per weight use)
    for spec in ("mlp:4-3-2", "conv:6x6x1:2-M:4-3", "cnn1d:40:4k5-4:10"):
        model = build_model(spec, 0)
        assert family_of(spec).training_flops(Mask.ones(model), model, 8) == 6 * 8 * work(model)


# ---- the ledger's algebra ---------------------------------------------------------------------------------
def test_ledgers_add_in_sequence_and_take_the_longest_chain_in_parallel() -> None:
    a, b = Ledger(100, 100, 1e6, 2.0), Ledger(30, 30, 5e5, 1.0)
    assert a + b == sequential([a, b]) == Ledger(130, 130, 1.5e6, 3.0)
    assert parallel([a, b]) == Ledger(130, 100, 1.5e6, 3.0)
    assert parallel([]) == sequential([]) == Ledger(0, 0, 0.0, 0.0)
    assert (a + Ledger(1, 1, None, None)) == Ledger(101, 101, None, None)  # unknown stays unknown
    assert (
        a.line() == "100 training steps, critical path 100 steps, 1e+06 FLOPs on kept weights, 2.0 s training"
    )


def ind(id: int, steps: int | None, parents: tuple[int, ...] = ()) -> Individual:
    return Individual("r", id, 0, b"\x01", parents, "", "child", "k", 0.5, 0.5, 0.5, True, steps=steps)


def test_lineage_steps_take_the_longer_parent_of_a_crossover() -> None:
    seeds = [ind(0, 30), ind(1, 60)]
    clone = ind(2, 0, (0,))  # an isomorph of its parent: 0 steps of its own
    cross = ind(3, 13, (2, 1))  # 13 of its own after the longer parent's 60
    grand = ind(4, 0, (3, 0))
    assert lineage_steps([*seeds, clone, cross, grand]) == {0: 30, 1: 60, 2: 30, 3: 73, 4: 73}
    assert lineage_steps([ind(0, 30), ind(1, None, (0,)), ind(2, 4, (1,))]) == {0: 30, 1: None, 2: None}
    assert lineage_steps([ind(0, 60), ind(1, 20, (0,))], per_training=2) == {0: 30, 1: 40}


# ---- a search's generation by hand --------------------------------------------------------------------
def halving(**fitness) -> object:
    return tiny_config(
        evaluator="local",
        ga={"generations": 1},
        fitness={"steps": 30, "successive_halving": True, "halving_rate": 2, "halving_rungs": 2, **fitness},
    )


def test_a_generations_ledger_by_hand_with_halving_an_isomorph_and_a_reused_rung(tmp_path) -> None:
    """Generation A: four new classes at 15 steps, the best two at 30. Generation B: a permuted copy of a
    class stopped at 15 (its 15-step accuracy is reused: no training at that rung), a copy of a class
    trained fully (an isomorph: 0 steps), a new mask (15); the permuted copy wins the second rung (30).
    Two init seeds: each training is 2 of steps, one training's steps on the critical path."""
    cfg = halving(init_seeds=[0, 1])
    with api.create_run(cfg, tmp_path, local=True) as run:
        problem = MaskProblem(cfg)
        loop = SearchLoop(problem, run.store, run.id, problem.evaluator(local=True)).restore()
        shapes = problem.shapes
        rng = np.random.default_rng(0)
        masks = [Mask({n: rng.random(s) < d for n, s in shapes.items()}) for d in (0.6, 0.4, 0.25, 0.15)]
        gen_a = loop.evaluate([Candidate(m, "test") for m in masks], 0, halving=True)
        a = loop.generation_ledger(gen_a)
        B = 128  # the fitness batch size
        kept = {i.id: i.mask.kept() for i in gen_a}
        full = [i.id for i in gen_a if i.fidelity == 1.0]
        assert len(full) == 2
        assert (a.steps, a.critical_path) == (2 * (4 * 15 + 2 * 30), 15 + 30)
        assert a.flops == 6 * B * 2 * (15 * sum(kept.values()) + 30 * sum(kept[i] for i in full))
        assert [i.steps for i in gen_a] == [2 * (15 + 30 * (i.id in full)) for i in gen_a]

        loop._remember_fidelities(gen_a)  # as committing generation A does
        loser = max((i for i in gen_a if i.fidelity == 0.5), key=lambda i: i.accuracy)
        winner = next(i for i in gen_a if i.fidelity == 1.0)
        perm = rng.permutation(shapes["fc1"][0])
        arrays = {n: loser.mask[n].numpy().copy() for n in shapes}
        arrays["fc1"], arrays["fc2"] = arrays["fc1"][perm], arrays["fc2"][:, perm]
        collapsed = {n: np.ones(s, dtype=bool) for n, s in shapes.items()}
        collapsed["fc3"][:] = False
        gen_b = loop.evaluate(
            [
                Candidate(Mask(arrays), "test"),
                Candidate(winner.mask.copy(), "test"),
                Candidate(Mask(collapsed), "test"),
            ],
            10,
            halving=True,
        )
        b = loop.generation_ledger(gen_b)
        assert [(i.fidelity, i.evaluated) for i in gen_b] == [(1.0, True), (1.0, False), (0.5, True)]
        assert (b.steps, b.critical_path) == (2 * (15 + 30), 15 + 30)
        # the class is trained on its representative, the loser's own mask (same kept count as its copy)
        assert b.flops == 6 * B * 2 * (15 * Mask(collapsed).kept() + 30 * loser.mask.kept())
        assert [i.steps for i in gen_b] == [2 * 30, 0, 2 * 15]
        loop.evaluator.close()


# ---- a whole search against what it trained ------------------------------------------------------------
def test_a_searchs_ledger_is_what_it_trained_and_every_reader_shows_it(tmp_path) -> None:
    cfg = halving(steps=30, halving_rate=3, halving_rungs=3)  # rungs of 3, 10 and 30 steps
    trained: list[tuple[int, str, int, float]] = []  # (generation, class, steps, seconds) as reported
    with api.create_run(cfg, tmp_path, local=True) as run:
        run.optimize(
            on_evaluation=lambda r, done, total: trained.append(
                (run.generation + 1, r.key, r.objectives.steps, r.wall_time)
            )
        )
        classes = run.store.classes(run.id)
        ledger, compute, individuals = run.ledger, run.compute(), run.individuals()
        history, shapes = run.history(), run.record.shapes
    assert {g for g, _, _, _ in trained} == {0, 1}
    rung_sets = {g: {s for gg, _, s, _ in trained if gg == g} for g in (0, 1)}
    assert rung_sets[0] == {30} and rung_sets[1] == {3, 10, 30}  # the children went through every rung
    kept = {key: Mask.unpack(c.representative, shapes).kept() for key, c in classes.items()}
    assert ledger.total_steps == sum(s for _, _, s, _ in trained)
    assert ledger.critical_path_steps == 30 + (3 + 10 + 30)  # generation 0, then each rung of generation 1
    assert ledger.flops == sum(6 * 128 * s * kept[k] for _, k, s, _ in trained)
    assert ledger.wall_time == pytest.approx(sum(w for _, _, _, w in trained))
    assert [g.steps for g in history] == [sum(s for g, _, s, _ in trained if g == gen) for gen in (0, 1)]
    # isomorphs (clones of a parent) cost 0; the run's steps up to each individual's generation
    by_id = {i.id: i for i in individuals}
    assert sum(i.steps for i in individuals) == ledger.total_steps
    assert all(i.steps == 0 for i in individuals if not i.evaluated and i.fidelity == 1.0)
    assert {compute.run_steps[i.id] for i in individuals if i.generation == 0} == {history[0].steps}
    assert {compute.run_steps[i.id] for i in individuals if i.generation == 1} == {ledger.total_steps}
    for i in individuals:
        parents = [compute.lineage_steps[p] for p in i.parents]
        assert compute.lineage_steps[i.id] == i.steps + max(parents, default=0)
    assert all(by_id[p].generation < i.generation for i in individuals for p in i.parents)
    # the runs table's steps and critical path; the front's lineage and run steps
    with Store.open(tmp_path, readonly=True) as store:
        rows = report.runs_rows(store)
        assert (rows[0]["steps"], rows[0]["critical_path"]) == (ledger.total_steps, 30 + 43)
        front = json.loads(report.format_front(store, run.id, "json", all=True))
        assert {r["id"]: (r["lineage_steps"], r["run_steps"]) for r in front} == {
            i.id: (compute.lineage_steps[i.id], compute.run_steps[i.id]) for i in individuals
        }
        table = report.format_front(store, run.id).splitlines()
        assert table[1].split()[-2:] == ["lineage_steps", "run_steps"]


# ---- IMP and confirmation ----------------------------------------------------------------------------------
IMP = {
    "kind": "imp",
    "name": "t",
    "dataset": "synthetic",
    "model": "mlp:16-24-24-4",
    "seed": 3,
    "evaluator": "local",
    "imp": {"init_seeds": [0, 1], "rounds": 2, "rewind_step": 10},
    "training": {"steps": 100, "lr": 0.01, "batch_size": 60, "eval_every": 45},
}


def test_an_imp_run_of_two_inits_and_three_rounds_and_its_confirmation(tmp_path) -> None:
    """Each trajectory: 10 dense steps to the rewind point, then 3 rounds of 90 steps from it, one after
    another; the two trajectories side by side. A confirmation's trainings are independent of each other."""
    cfg = api.check_run(parse_imp_config(toml_of(IMP), "<imp>"))
    with ls.imp(cfg, tmp_path) as run:
        ledger, compute = run.ledger, run.compute()
        rounds, individuals = run.imp_rounds(), {i.id: i for i in run.individuals()}
    assert len(rounds) == 6
    assert (ledger.total_steps, ledger.critical_path_steps) == (2 * (10 + 3 * 90), 10 + 3 * 90)
    per_round = {r.individual_id: individuals[r.individual_id].mask.kept() for r in rounds}
    dense = 16 * 24 + 24 * 24 + 24 * 4
    assert {per_round[r.individual_id] for r in rounds if r.round == 0} == {dense}
    assert ledger.flops == 6 * 60 * (2 * 10 * dense + 90 * sum(per_round.values()))
    assert ledger.wall_time == pytest.approx(sum(r.wall_time for r in rounds)) and ledger.wall_time > 0
    # per ticket: its trajectory so far; the run's steps up to its round (every trajectory)
    assert [compute.lineage_steps[r.individual_id] for r in rounds] == [100, 190, 280] * 2
    assert [compute.run_steps[r.individual_id] for r in rounds] == [200, 380, 560] * 2

    last = [r.individual_id for r in rounds if r.round == 2]
    protocol = {"steps": 60, "lr": 0.01, "batch_size": 30, "eval_every": 25}
    ls.confirm(
        tmp_path, "t-001", ids=last[:1], protocol=TrainingConfig(**protocol), reinit_seeds=[1000], local=True
    )
    ls.confirm(tmp_path, "t-001", ids=last[:1], reinit_seeds=[], local=True)  # the run's own: its round
    with ls.open_run(tmp_path, "t-001") as run:
        other = run.confirmation_ledger(TrainingConfig(**protocol))
        own = run.confirmation_ledger(cfg.training)
        both = run.confirmation_ledger()
        assert run.ledger == ledger  # confirmations are apart from the run's ledger
    k = per_round[last[0]]
    # own init and the reinit control alike: the protocol's 60 - 10 steps from iteration 10 (the rewind step)
    assert (other.total_steps, other.critical_path_steps) == (50 + 50, 50)
    assert other.flops == 6 * 30 * (50 + 50) * k
    assert other.wall_time > 0
    assert own == Ledger(0, 0, 0.0, 0.0)  # the round's own training, already in the run's ledger
    assert both == other and (ledger + both).total_steps == 560 + 100


# ---- a version-4 store ----------------------------------------------------------------------------------------
def test_a_version_4_store_gains_the_ledger_derived_from_its_config(tmp_path) -> None:
    """A run stored before the ledger (no halving): each trained class was one full training per init seed,
    in its individual's generation; a reader derives the same ledger the loop records, a writer migrates."""
    cfg = tiny_config(evaluator="local", ga={"generations": 1}, fitness={"steps": 20, "init_seeds": [0, 1]})
    with api.create_run(cfg, tmp_path, local=True) as run:
        run.optimize()
        recorded, compute = run.ledger, run.compute()
    assert recorded.total_steps > 0 and recorded.critical_path_steps == 2 * 20
    db = tmp_path / STORE_FILENAME
    with sqlite3.connect(db) as conn:  # what version 4 wrote: no ledger columns
        for table, column in [
            ("individuals", "steps"),
            ("generations", "steps"),
            ("generations", "critical_path_steps"),
            ("generations", "flops"),
            ("generations", "train_seconds"),
            ("imp_rounds", "wall_time"),
            ("confirmations", "steps"),
            ("confirmations", "flops"),
            ("confirmations", "wall_time"),
        ]:
            conn.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
        conn.execute("UPDATE meta SET value = '4' WHERE key = 'schema_version'")
    conn.close()

    def derived(store: Store) -> tuple:
        c = run_compute(store, run.id)
        assert c.ledger.wall_time == pytest.approx(recorded.wall_time)  # the classes' seconds, summed
        return (
            (c.ledger.total_steps, c.ledger.critical_path_steps, c.ledger.flops),
            c.lineage_steps,
            c.run_steps,
        )

    expected = (
        (recorded.total_steps, recorded.critical_path_steps, recorded.flops),
        compute.lineage_steps,
        compute.run_steps,
    )
    with Store.open(tmp_path, readonly=True) as store:  # read as it is
        assert all(i.steps is None for i in store.individuals(run.id))
        assert derived(store) == expected
        (row,) = report.runs_rows(store)
        assert (row["steps"], row["critical_path"]) == (recorded.total_steps, recorded.critical_path_steps)
    with Store.open(tmp_path) as store:  # a writer adds the columns, NULL in the old rows
        assert all(g.steps is None for g in store.generations(run.id))
        assert derived(store) == expected
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == ("5",)
    conn.close()


# ---- steady state, the listing and the dashboard ---------------------------------------------------------------
def test_a_steady_state_runs_critical_path_is_its_longest_lineage_and_the_readers_show_it(tmp_path) -> None:
    cfg = tiny_config(
        evaluator="local",
        ga={"mode": "steady_state", "generations": 2},
        fitness={"steps": 20, "init_seeds": [0, 1]},
    )
    with api.create_run(cfg, tmp_path, local=True) as run:
        run.optimize()
        ledger, individuals, history = run.ledger, run.individuals(), run.history()
    by_id = {i.id: i for i in individuals}

    def chain(
        i: Individual,
    ) -> int:  # one training's steps (the two init seeds side by side) along the lineage
        return i.steps // 2 + max((chain(by_id[p]) for p in i.parents if p in by_id), default=0)

    assert all(i.steps in (0, 2 * 20) for i in individuals)
    assert ledger.total_steps == sum(i.steps for i in individuals) == sum(g.steps for g in history)
    assert [g.critical_path_steps for g in history] == [
        20,
        None,
        None,
    ]  # generation 0: the seeds, side by side
    assert ledger.critical_path_steps == max(chain(i) for i in individuals) >= 2 * 20
    assert ledger.flops == sum(6 * 128 * i.steps * i.mask.kept() for i in individuals)
    with Store.open(tmp_path, readonly=True) as store:
        (row,) = report.runs_rows(store)
        assert (row["steps"], row["critical_path"]) == (ledger.total_steps, ledger.critical_path_steps)
        view = views.run_view(store, run.id)
    assert view["run"]["ledger"] == ledger.as_dict() and view["run"]["ledger_line"] == ledger.line()
    assert view["run"]["confirmation_ledger"] == Ledger().as_dict()
    assert {m["id"]: m["lineage_steps"] for m in view["masks"]} == {i.id: chain(i) * 2 for i in individuals}
