"""Noise-aware selection (``ga.reevaluate_elites``): the front's classes trained again under a second order
of minibatches, their accuracy the mean of the two stored trainings, the steps counted, resume exact."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import pytest
from helpers import tiny_config

from lotterysearch import api
from lotterysearch.core.masks import Mask
from lotterysearch.errors import ConfigError
from lotterysearch.evolution import pareto
from lotterysearch.evolution.problem import search_data
from lotterysearch.settings import parse_config
from lotterysearch.storage.store import Store
from lotterysearch.training.fitness import batch_seed, evaluate_masks


def noisy(**ga) -> object:
    return tiny_config(evaluator="local", ga={"generations": 3, "reevaluate_elites": True, **ga})


def state(workspace: Path, run_id: str) -> dict:
    with Store.open(workspace) as store:
        return {
            "generations": [
                (g.gen, g.population, g.front, g.hypervolume, g.best_accuracy)
                for g in store.generations(run_id)
            ],
            "individuals": [(i.id, i.class_key, i.accuracy, i.parents) for i in store.individuals(run_id)],
            "classes": {k: c.accuracy for k, c in store.classes(run_id).items()},
            "reevaluations": [(r.key, r.gen, r.accuracy, r.steps) for r in store.reevaluations(run_id)],
        }


def test_batch_order_changes_the_batches_not_the_init() -> None:
    assert batch_seed(7, 0) == 7
    assert (
        batch_seed(7, 1) != 7
        and batch_seed(7, 1) != batch_seed(8, 1)
        and batch_seed(7, 1) != batch_seed(7, 2)
    )
    cfg = tiny_config()
    data = search_data(cfg)
    from lotterysearch.core.models import build_model

    mask = Mask.ones(build_model(cfg.model, 0))
    (a,) = evaluate_masks([mask], cfg.model, data, cfg.fitness)
    (b,) = evaluate_masks([mask], cfg.model, data, cfg.fitness.with_batch_order(1))
    (c,) = evaluate_masks([mask], cfg.model, data, cfg.fitness.with_batch_order(1))
    assert b == c and b.accuracy != a.accuracy or b.loss != a.loss


def test_elites_are_averaged_over_two_batch_orders(tmp_path) -> None:
    cfg = noisy()
    reports = []
    with api.create_run(cfg, tmp_path, local=True) as run:
        run.optimize(progress=reports.append)
        store, rid = run.store, run.id
        again = store.reevaluations(rid)
        raw = {}  # each class's first training, as stored with the individual that trained it
        with store._sql() as conn:
            raw = dict(conn.execute("SELECT key, accuracy FROM classes WHERE run_id = ?", (rid,)).fetchall())
        classes = store.classes(rid)
        gens = store.generations(rid)
        individuals = {i.id: i for i in store.individuals(rid)}
        shapes = run.problem.shapes
    assert again, "no class was re-evaluated"
    assert {r.batch_order for r in again} == {1} and {r.gen for r in again} <= {1, 2, 3}
    # generation 1 re-evaluates exactly the classes of generation 0's population front
    # (by the accuracies it had then: each class's first training)
    pop0 = [replace(individuals[i], accuracy=raw[individuals[i].class_key]) for i in gens[0].population]
    front0 = {ind.class_key for ind in pareto.front(pop0)}
    assert {r.key for r in again if r.gen == 1} == front0
    # a class's accuracy is the mean of its two stored trainings, by hand; its full-fidelity members agree
    for r in again:
        assert r.steps == cfg.fitness.steps * len(cfg.fitness.init_seeds)
        assert classes[r.key].accuracy == (raw[r.key] + r.accuracy) / 2
        members = [i for i in individuals.values() if i.class_key == r.key]
        assert members and all(i.accuracy == classes[r.key].accuracy for i in members)
    # the second training is one more training of the representative under batch order 1, from the same θ₀
    r = again[0]
    rep = Mask.unpack(classes[r.key].representative, shapes)
    (o,) = evaluate_masks([rep], cfg.model, search_data(cfg), cfg.fitness.with_batch_order(1))
    assert o.accuracy == r.accuracy
    # the extra trainings are steps of the generation they preceded
    steps = cfg.fitness.steps * len(cfg.fitness.init_seeds)
    for rep_ in reports[1:]:
        extra = sum(x.steps for x in again if x.gen == rep_.generation)
        trained = rep_.evaluated * steps
        assert rep_.steps == trained + extra
    # ... and of its compute ledger: the re-evaluations run side by side, one training on its critical path
    for rep_, g in zip(reports[1:], gens[1:], strict=True):
        reevaluated = any(x.gen == rep_.generation for x in again)
        assert g.steps == rep_.steps
        assert g.critical_path_steps == cfg.fitness.steps * ((rep_.evaluated > 0) + reevaluated)
    assert "best val acc after 30 steps" in reports[-1].line()


def test_a_run_killed_between_generations_resumes_to_the_same_numbers(tmp_path) -> None:
    cfg = noisy()
    with api.create_run(cfg, tmp_path / "clean", local=True) as run:
        run.optimize()
        clean = state(tmp_path / "clean", run.id)
    with api.create_run(cfg, tmp_path / "killed", local=True) as run:
        run.optimize(2)
        rid = run.id
    with api.open_run(tmp_path / "killed", rid, local=True) as run:
        run.resume()
    assert state(tmp_path / "killed", rid) == clean


def test_a_run_killed_after_a_reevaluation_replays_it_without_training(tmp_path) -> None:
    """Stopped right after generation 2's re-evaluations are stored (before it commits): they do not count
    yet, and the resumed run reuses them and ends where an uninterrupted one ends."""
    cfg = noisy()

    class Crash(Exception):
        pass

    with api.create_run(cfg, tmp_path / "killed", local=True) as run:
        run.optimize(1)
        loop = run._loop()
        original = loop._offspring

        def crash():
            raise Crash

        loop._offspring = crash
        with pytest.raises(Crash):
            run.optimize(1)
        rid = run.id
        stored = run.store.reevaluations(rid)
        assert stored and {r.gen for r in stored} == {1}
        assert run.store.last_generation(rid).gen == 0
        loop._offspring = original
    with api.open_run(tmp_path / "killed", rid, local=True) as run:
        run.resume()
        assert [(r.key, r.accuracy) for r in run.store.reevaluations(rid)][: len(stored)] == [
            (r.key, r.accuracy) for r in stored
        ]
    with api.create_run(cfg, tmp_path / "clean", local=True) as run:
        run.optimize()
        clean = state(tmp_path / "clean", run.id)
    assert state(tmp_path / "killed", rid) == clean


def test_reevaluation_config_is_checked() -> None:
    with pytest.raises(ConfigError, match="reevaluate_elites"):
        tiny_config(ga={"reevaluate_elites": True, "mode": "steady_state"})
    with pytest.raises(ConfigError, match="field 'fitness.batch_order' must be an integer >= 0"):
        tiny_config(fitness={"batch_order": -1})
    assert not math.isnan(parse_config("[ga]\nreevaluate_elites = true\n").ga.population)


def test_a_store_without_the_table_reads_none_and_gains_it_on_first_write(tmp_path) -> None:
    """A store has no ``reevaluations`` table until a run re-evaluates (older stores neither): it reads as
    having none, and the first re-evaluation creates it; a re-evaluation of an unknown class is refused."""
    from lotterysearch.errors import StoreError
    from lotterysearch.storage.store import Reevaluation

    cfg = tiny_config(evaluator="local", ga={"generations": 0})
    with api.create_run(cfg, tmp_path, local=True) as run:
        run.optimize()
        rid, key = run.id, run.front()[0].class_key
        first = run.store.classes(rid)[key].accuracy
    with Store.open(tmp_path) as store:
        tables = "SELECT name FROM sqlite_master WHERE type = 'table'"
        assert "reevaluations" not in {r[0] for r in store._db.execute(tables)}
        assert store.reevaluations(rid) == []
        assert store.classes(rid)[key].accuracy == first
        rec = Reevaluation(rid, key, 1, 0, 0.25, math.nan, 30, "local", 0.1)
        with pytest.raises(StoreError, match="class 'nope' has no full-fidelity training"):
            store.record_reevaluations(rid, [replace(rec, key="nope")])
        store.record_reevaluations(rid, [rec])
        (back,) = store.reevaluations(rid)
        assert math.isnan(back.loss) and back.created  # a diverged loss comes back as NaN
        assert replace(back, created=None, loss=0.0) == replace(rec, loss=0.0)
        # generation 0 is committed: the class reads as the mean of its two trainings, on every member
        assert store.classes(rid)[key].accuracy == (first + 0.25) / 2
        members = [i for i in store.individuals(rid) if i.class_key == key]
        assert members and {i.accuracy for i in members} == {(first + 0.25) / 2}


def test_on_ray_the_second_trainings_are_the_local_ones(ray_local, tmp_path) -> None:
    """The Ray evaluators train under the second batch order too (``order`` travels with the call), to the
    same numbers as in this process."""
    cfg = noisy(generations=1)
    with api.create_run(
        tiny_config(ga={"generations": 1, "reevaluate_elites": True}), tmp_path / "ray"
    ) as run:
        run.optimize()
        on_ray = state(tmp_path / "ray", run.id)
    with api.create_run(cfg, tmp_path / "local", local=True) as run:
        run.optimize()
        here = state(tmp_path / "local", run.id)
    assert on_ray["reevaluations"] and on_ray["reevaluations"] == here["reevaluations"]
