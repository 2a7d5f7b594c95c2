"""The search end to end on a real local Ray: generations, isomorph skipping, kill and resume, lost workers,
the driver lock and successive halving, driven through the Python API (``api.create_run``, ``api.open_run``)
and, for the killed driver, the CLI."""

from __future__ import annotations

import math
import os
import platform
import signal
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from helpers import assert_running, sigkill, start_driver, tiny_config, tiny_toml, wait_for

from lotterysearch import api
from lotterysearch.core.masks import Mask
from lotterysearch.errors import ConfigError, StoreError
from lotterysearch.evolution.loop import SearchLoop, halving_rungs
from lotterysearch.evolution.pareto import REF_POINT, hypervolume, pareto_front
from lotterysearch.evolution.problem import Candidate, MaskProblem
from lotterysearch.evolution.selection import select_nsga2, select_survivors
from lotterysearch.execution.evaluators import LocalEvaluator
from lotterysearch.runs.ledger import run_ledger
from lotterysearch.settings import SearchConfig, load_config
from lotterysearch.storage.store import Store


def tiny(steps: int = 30, generations: int = 3) -> SearchConfig:
    return tiny_config(fitness={"steps": steps}, ga={"generations": generations})


def final_state(workspace: Path, run_id: str) -> dict:
    with Store.open(workspace) as store:
        last = store.last_generation(run_id)
        individuals = store.individuals(run_id)
        classes = store.classes(run_id)
        ledger = run_ledger(store, run_id)
        by_id = {i.id: i for i in individuals}
        return {
            "generation": last.gen,
            "population": [
                (i, by_id[i].class_key, by_id[i].accuracy, by_id[i].density) for i in last.population
            ],
            "front": list(last.front),
            "hypervolume": last.hypervolume,
            "classes": sorted(classes),
            "trained": sum(i.evaluated for i in individuals),
            "individuals": len(individuals),
            "status": store.run(run_id).status,
            # the compute ledger counts the decisions, not what a resumed driver trained again; its wall
            # time is what the trainings took this time
            "ledger": (ledger.total_steps, ledger.critical_path_steps, ledger.flops),
            "steps": [(i.id, i.steps) for i in individuals],
        }


def test_search_end_to_end(ray_local, tmp_path) -> None:
    reports = []
    with api.create_run(tiny(), tmp_path) as run:
        assert run.status == "running" and run.generation == -1  # created, nothing committed yet
        run.optimize(progress=reports.append)
        run_id, run_front = run.id, run.front()
        assert run.status == "finished" and run.generation == 3
    assert [r.generation for r in reports] == [0, 1, 2, 3]
    with Store.open(tmp_path) as store:
        assert store.run(run_id).status == "finished"
        gens = store.generations(run_id)
        individuals = store.individuals(run_id)
        classes = store.classes(run_id)
    # every individual has objectives; each trained class was trained for exactly one individual
    assert all(not math.isnan(i.accuracy) and 0 <= i.accuracy <= 1 for i in individuals)
    assert sum(i.evaluated for i in individuals) == len(classes)
    assert {c.individual_id for c in classes.values()} == {i.id for i in individuals if i.evaluated}
    assert {i.class_key for i in individuals} == set(classes)
    # generation 0: 2 seeds x 2 compressions SynFlow, 2 random controls, 2 mutated SynFlow copies
    origins = sorted(i.origin.split(":")[0] for i in individuals if i.generation == 0)
    assert origins == ["random"] * 2 + ["synflow"] * 6
    assert len([i for i in individuals if i.origin.endswith("+move")]) == 2
    # counts: trained + skipped = new individuals; hypervolume never falls; the front is the true front
    for g in gens:
        born = [i for i in individuals if i.generation == g.gen]
        assert g.evaluated + g.skipped == len(born) == 8
        assert g.evaluated == sum(i.evaluated for i in born)
    assert [g.hypervolume for g in gens] == sorted(g.hypervolume for g in gens)
    objs = [(i.accuracy, i.density) for i in individuals]
    true_front = {objs[k] for k in pareto_front(objs)}
    last = gens[-1]
    by_id = {i.id: i for i in individuals}
    assert {(by_id[i].accuracy, by_id[i].density) for i in last.front} == true_front
    assert last.hypervolume == pytest.approx(hypervolume(sorted(true_front), REF_POINT))
    assert sum(g.skipped for g in gens) > 0  # clones and re-found masks are not trained again
    assert reports[-1].hypervolume == last.hypervolume
    # the API's front (over everything stored) is the front committed with the last generation
    assert [i.id for i in run_front] == sorted(last.front, key=lambda i: (by_id[i].density, i))


def test_driver_killed_mid_generation_resumes_to_the_same_result(ray_local, tmp_path) -> None:
    """SIGKILL the CLI driver after generation 1 is committed and some of generation 2 is trained; resuming
    must end exactly where an uninterrupted run with the same seed ends, training nothing twice."""
    config = tmp_path / "tiny.toml"
    config.write_text(tiny_toml(fitness={"steps": 400}))
    killed_ws, clean_ws = tmp_path / "killed", tmp_path / "clean"
    driver = start_driver("search", str(config), "--workspace", str(killed_ws))
    try:
        state: dict = {}

        def mid_generation_two() -> bool:
            assert_running(driver)
            if not (killed_ws / "lotterysearch.sqlite").exists():
                return False
            with Store.open(killed_ws) as store:
                runs = store.runs()
                if not runs:
                    return False
                last = store.last_generation(runs[0].id)
                n_classes = len(store.classes(runs[0].id))
            if last is None or last.gen < 1:
                return False
            assert last.gen == 1, "generation 2 finished before the kill: make the evaluations slower"
            state.setdefault("classes_at_1", n_classes)
            state["run_id"] = runs[0].id
            return n_classes > state["classes_at_1"]

        wait_for(mid_generation_two, 300, "generation 2 to start training")
        # a second driver of the live run is refused before it writes anything
        with api.open_run(killed_ws, state["run_id"]) as second, pytest.raises(StoreError) as e:
            second.optimize()
        sigkill(driver)
    finally:
        sigkill(driver)
    run_id = state["run_id"]
    assert str(e.value) == (
        f"run '{run_id}' is being driven by pid {driver.pid} on {platform.node()}; stop that process or wait"
        " for it to end"
    )
    with Store.open(killed_ws) as store:
        assert store.run(run_id).status == "running"  # the driver had no chance to say otherwise
        assert store.last_generation(run_id).gen == 1

    with api.open_run(killed_ws, run_id) as resumed:
        assert resumed.generation == 1
        resumed.optimize()
        with pytest.raises(StoreError) as done:
            resumed.resume()
    assert str(done.value) == f"run '{run_id}' has already finished; nothing to resume"
    with api.create_run(load_config(config), clean_ws) as clean:
        clean.optimize()
        assert clean.id == "tiny-001"
    a, b = final_state(killed_ws, run_id), final_state(clean_ws, "tiny-001")
    assert a == b
    assert a["status"] == "finished" and a["generation"] == 3
    assert a["trained"] == len(a["classes"])  # nothing trained twice, nothing lost


def test_a_worker_killed_mid_evaluation_costs_a_retry_not_an_individual(ray_local, tmp_path) -> None:
    victims: list[int] = []

    def kill_first_worker(result, done, total) -> None:
        # that worker has been handed its next job before this result came back: kill it mid-training
        if not victims and done < total:
            victims.append(result.pid)
            time.sleep(0.05)
            os.kill(result.pid, signal.SIGKILL)

    with api.create_run(tiny(steps=300, generations=1), tmp_path) as run:
        run.optimize(on_evaluation=kill_first_worker)
        run_id = run.id
    assert victims and victims[0] != os.getpid()
    with Store.open(tmp_path) as store:
        individuals = store.individuals(run_id)
        classes = store.classes(run_id)
        assert store.run(run_id).status == "finished"
    assert all(not math.isnan(i.accuracy) for i in individuals)
    assert any(c.attempts == 2 for c in classes.values())
    assert sum(i.evaluated for i in individuals) == len(classes)


# ---- successive halving ------------------------------------------------------------------------------


def halving(steps: int = 30, generations: int = 2, **fitness) -> SearchConfig:
    return tiny_config(
        ga={"generations": generations},
        fitness={
            "steps": steps,
            "successive_halving": True,
            "halving_rate": 3,
            "halving_rungs": 3,
            **fitness,
        },
    )


def rungs(cfg: SearchConfig) -> list[int]:
    f = cfg.fitness
    return halving_rungs(f.steps, f.successive_halving, f.halving_rate, f.halving_rungs)


def test_halving_rungs_and_survivors_rank_full_fidelity_first() -> None:
    assert rungs(tiny()) == [30]
    assert rungs(halving()) == [3, 10, 30]
    assert rungs(halving(steps=115, halving_rate=2, halving_rungs=2)) == [58, 115]
    assert halving_rungs(30, False, 3, 3) == [30]  # the rungs count only with halving on
    # a low-fidelity individual that would dominate everything still ranks after the full-fidelity ones
    objectives = [(0.5, 0.5), (0.9, 0.01), (0.6, 0.2), (0.4, 0.9)]
    fidelities = [1.0, 1 / 3, 1.0, 1.0]
    assert sorted(select_survivors(objectives, fidelities, 2)) == [0, 2]
    assert sorted(select_survivors(objectives, fidelities, 4)) == [0, 1, 2, 3]
    assert select_survivors(objectives, [1.0] * 4, 2) == select_nsga2(objectives, 2)


def test_halving_config_is_checked() -> None:
    with pytest.raises(ConfigError) as e:
        halving(steps=8)
    assert str(e.value) == (
        "field 'fitness.steps' must be at least halving_rate^(halving_rungs-1) = 9 with successive halving"
        " (every rung needs a step), got 8"
    )
    with pytest.raises(ConfigError, match=r"^field 'fitness.halving_rate' must be an integer >= 2, got 1$"):
        halving(halving_rate=1)


class RungLog:
    """Every training the loop asks for: (generation, key, steps, accuracy)."""

    def __init__(self, loop: SearchLoop) -> None:
        self.loop, self.rows = loop, []
        loop.evaluation_listeners.append(self)

    def __call__(self, result, done, total) -> None:
        steps = result.objectives.steps // len(self.loop.cfg.fitness.init_seeds)
        self.rows.append((self.loop.generation + 1, result.key, steps, result.objectives.accuracy))


def test_successive_halving_trains_the_best_third_further_and_records_fidelity(ray_local, tmp_path) -> None:
    run = api.create_run(halving(), tmp_path)
    loop = run._loop()
    log, reports, measured = RungLog(loop), [], []
    measure = loop._measure

    def recording_measure(keys, reps, steps):  # what each rung compared: (generation, steps, [(key, acc, d)])
        accuracy = measure(keys, reps, steps)
        measured.append((loop.generation + 1, steps, [(k, accuracy[k], reps[k][1].density()) for k in keys]))
        return accuracy

    loop._measure = recording_measure
    with run:
        run.optimize(progress=reports.append)
        run_id = run.id
    with Store.open(tmp_path) as store:
        individuals = store.individuals(run_id)
        classes = store.classes(run_id)
        gens = store.generations(run_id)
    for g in range(3):
        mine = [(steps, rows) for gen, steps, rows in measured if gen == g]
        assert [steps for steps, _ in mine] == (
            [30] if g == 0 else [3, 10, 30]
        )  # the seeds are trained fully
        # each rung goes on with ceil(n/3) of the one before: those select_nsga2 keeps by (accuracy, density)
        for (_, low), (_, high) in zip(mine, mine[1:], strict=False):
            kept = select_nsga2([(a, d) for _, a, d in low], math.ceil(len(low) / 3))
            assert [k for k, _, _ in high] == [low[i][0] for i in sorted(kept)]
        assert reports[g].steps == sum(st for gen, _, st, _ in log.rows if gen == g)
        if g:
            assert reports[g].steps <= 30 * len(mine[0][1]) / 2  # at most half of training every class fully
    assert loop.steps_spent == sum(r.steps for r in reports) == sum(st for _, _, st, _ in log.rows)
    # the store keeps each class at the highest fidelity measured; an individual keeps the objectives its
    # class had when it was born (a class met again later may since have been trained further)
    assert {c.fidelity for c in classes.values()} == {0.1, 1 / 3, 1.0}
    for i in individuals:
        c = classes[i.class_key]
        assert i.fidelity <= c.fidelity
        if c.individual_id == i.id:
            assert (i.accuracy, i.fidelity, i.evaluated) == (c.accuracy, c.fidelity, True)
    # only full-fidelity individuals make the front and the hypervolume
    by_id = {i.id: i for i in individuals}
    full = [(i.accuracy, i.density) for i in individuals if i.fidelity == 1.0]
    assert all(by_id[i].fidelity == 1.0 for g in gens for i in g.front)
    assert {(by_id[i].accuracy, by_id[i].density) for i in gens[-1].front} == {
        full[k] for k in pareto_front(full)
    }
    assert gens[-1].hypervolume == pytest.approx(hypervolume(full, REF_POINT))


class OneResultPerGroup:
    """The evaluator it wraps, less ``evaluate_ready``: the loop then commits each result on its own."""

    def __init__(self, inner: object) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> object:
        if name == "evaluate_ready":
            raise AttributeError(name)
        return getattr(self.inner, name)


def test_a_halving_search_interrupted_mid_rung_resumes_to_the_same_result(ray_local, tmp_path) -> None:
    """Stop the driver in generation 1 once one class is recorded at the second rung and another is not;
    the resumed run ends exactly where an uninterrupted one ends. (An exception from a listener stands in
    for SIGKILL: every result is committed as it arrives, so the store is what a killed driver leaves.)"""
    cfg = halving(generations=3)
    run = api.create_run(cfg, tmp_path / "killed")
    loop = run._loop()
    # the Ray pool groups whatever results are ready together, and on a loaded machine the whole rung can
    # arrive as one group; without ``evaluate_ready`` every result is its own group, so a mid-rung stop exists
    loop.evaluator = OneResultPerGroup(loop.evaluator)

    class Crash(Exception):
        pass

    rung: list[int] = []

    def crash_mid_second_rung(result, done, total) -> None:
        # results that arrive together are committed together: stop once some, not all, are stored
        if loop.generation == 0 and result.objectives.steps == 10:
            stored = sum(
                loop.archive.get(k).fidelity == 1 / 3
                and loop.archive.get(k).individual_id >= cfg.ga.population
                for k in loop.archive
            )
            if stored < total:
                rung.append(total)
                raise Crash

    with run, pytest.raises(Crash):
        run.optimize(on_evaluation=crash_mid_second_rung)
    run_id = run.id
    with Store.open(tmp_path / "killed") as store:
        assert store.run(run_id).status == "failed"
        assert store.last_generation(run_id).gen == 0
        recorded = store.classes(run_id)
    at_second_rung = sum(
        c.fidelity == 1 / 3 and c.individual_id >= cfg.ga.population for c in recorded.values()
    )
    assert 1 <= at_second_rung < rung[0]
    with api.open_run(tmp_path / "killed", run_id) as resumed:
        log = RungLog(resumed._loop())
        resumed.optimize()
    with api.create_run(cfg, tmp_path / "clean") as clean:
        clean.optimize()
        clean_id = clean.id
    assert final_state(tmp_path / "killed", run_id) == final_state(tmp_path / "clean", clean_id)
    # the replay trained nothing the store held at that fidelity; it did retrain lower rungs it no longer held
    replayed = [(k, s) for g, k, s, _ in log.rows if g == 1]
    assert not [(k, s) for k, s in replayed if k in recorded and recorded[k].fidelity == s / 30]
    assert [(k, s) for k, s in replayed if k in recorded and recorded[k].fidelity > s / 30]


def test_a_class_stopped_early_competes_again_when_met_later(tmp_path) -> None:
    """Generation A stops two of four classes at half the budget. Generation B meets one of them again (as
    a permuted copy) beside a worse new mask: its stored half-budget accuracy is reused at the first rung,
    it wins, and it is trained to the full budget on its first mask, recorded for the new individual."""
    cfg = halving(steps=30, halving_rate=2, halving_rungs=2)
    with api.create_run(cfg, tmp_path, local=True) as run:  # in process: no Ray
        problem = MaskProblem(cfg)
        loop = SearchLoop(problem, run.store, run.id, problem.evaluator(local=True)).restore()
        assert isinstance(loop.evaluator, LocalEvaluator) and loop.generation == -1
        log = RungLog(loop)
        shapes = problem.shapes
        rng = np.random.default_rng(0)
        masks = [Mask({n: rng.random(s) < d for n, s in shapes.items()}) for d in (0.6, 0.4, 0.25, 0.15)]
        gen_a = loop.evaluate([Candidate(m, "test") for m in masks], 0, halving=True)
        assert [ind.id for ind in gen_a] == [0, 1, 2, 3]
        assert sorted(ind.fidelity for ind in gen_a) == [0.5, 0.5, 1.0, 1.0]
        loser = max((ind for ind in gen_a if ind.fidelity == 0.5), key=lambda ind: ind.accuracy)
        winner = next(ind for ind in gen_a if ind.fidelity == 1.0)
        # a permuted copy of the loser (same class), a copy of a winner, and a collapsed denser mask
        perm = rng.permutation(shapes["fc1"][0])
        arrays = {n: loser.mask[n].numpy().copy() for n in shapes}
        arrays["fc1"], arrays["fc2"] = arrays["fc1"][perm], arrays["fc2"][:, perm]
        copy = Mask(arrays)
        collapsed = {n: np.ones(s, dtype=bool) for n, s in shapes.items()}
        collapsed["fc3"][:] = False
        log.rows.clear()
        gen_b = loop.evaluate(
            [
                Candidate(copy, "test"),
                Candidate(winner.mask.copy(), "test"),
                Candidate(Mask(collapsed), "test"),
            ],
            10,
            halving=True,
        )
        assert [ind.id for ind in gen_b] == [10, 11, 12]
        assert gen_b[0].class_key == loser.class_key
        trained = [(k, s) for _, k, s, _ in log.rows]
        # rung 1: only the new mask is trained (the loser's half-budget accuracy is in the store; the winner
        # is settled); rung 2: the loser beats the collapsed mask and is trained fully
        assert trained == [(gen_b[2].class_key, 15), (loser.class_key, 30)]
        rec = loop.archive.get(loser.class_key)
        assert (rec.fidelity, rec.individual_id, rec.representative) == (1.0, 10, loser.mask.pack())
        assert replace(run.store.classes(run.id)[loser.class_key], created=None) == rec  # committed at once
        assert (gen_b[0].fidelity, gen_b[0].evaluated) == (1.0, True)
        assert (gen_b[1].fidelity, gen_b[1].evaluated) == (1.0, False)  # an isomorph hit
        assert (gen_b[2].fidelity, gen_b[2].evaluated) == (0.5, True)
        loop.evaluator.close()
