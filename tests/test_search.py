"""The search end to end on a real local Ray: generations, isomorph skipping, kill and resume, lost workers."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from lotterysearch.config import load_config, parse_config
from lotterysearch.evolution import hypervolume, pareto_front
from lotterysearch.search import REF_POINT, Search
from lotterysearch.store import Store

TINY = """
name = "tiny"
dataset = "synthetic"
model = "mlp:16-24-24-4"
seed = 3
[seeding]
init_seeds = [0, 1]
compressions = [3, 10]
random_share = 0.25
iterations = 20
[ga]
population = 8
generations = 3
[fitness]
steps = {steps}
[ray]
num_evaluators = 2
"""


def tiny(steps: int = 30, generations: int = 3):
    cfg = parse_config(TINY.format(steps=steps))
    return replace(cfg, ga=replace(cfg.ga, generations=generations))


def final_state(workspace: Path, run_id: str) -> dict:
    with Store.open(workspace) as store:
        last = store.last_generation(run_id)
        individuals = store.individuals(run_id)
        classes = store.classes(run_id)
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
        }


def test_search_end_to_end(ray_local, tmp_path) -> None:
    cfg = tiny()
    search = Search.start(cfg, tmp_path)
    reports = []
    search.listeners.append(reports.append)
    run_id = search.run()
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


def _wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def test_driver_killed_mid_generation_resumes_to_the_same_result(ray_local, tmp_path) -> None:
    """SIGKILL the driver after generation 1 is committed and some of generation 2 is trained; --resume
    must end exactly where an uninterrupted run with the same seed ends, training nothing twice."""
    config = tmp_path / "tiny.toml"
    config.write_text(TINY.format(steps=400))
    killed_ws, clean_ws = tmp_path / "killed", tmp_path / "clean"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    driver = subprocess.Popen(
        [sys.executable, "-m", "lotterysearch.cli", "search", str(config), "--workspace", str(killed_ws)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    try:
        state: dict = {}

        def mid_generation_two() -> bool:
            if driver.poll() is not None:
                raise AssertionError(f"driver exited early: {driver.stdout.read().decode()[-2000:]}")
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

        _wait_for(mid_generation_two, 300, "generation 2 to start training")
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait(30)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
            driver.wait(30)
    run_id = state["run_id"]
    with Store.open(killed_ws) as store:
        assert store.run(run_id).status == "running"  # the driver had no chance to say otherwise
        assert store.last_generation(run_id).gen == 1

    resumed = Search.resume(run_id, killed_ws)
    assert resumed.generation == 1
    resumed.run()
    Search.start(load_config(config), clean_ws).run()
    a, b = final_state(killed_ws, run_id), final_state(clean_ws, "tiny-001")
    assert a == b
    assert a["status"] == "finished" and a["generation"] == 3
    assert a["trained"] == len(a["classes"])  # nothing trained twice, nothing lost


def test_a_worker_killed_mid_evaluation_costs_a_retry_not_an_individual(ray_local, tmp_path) -> None:
    search = Search.start(tiny(steps=300, generations=1), tmp_path)
    victims: list[int] = []

    def kill_first_worker(result, done, total) -> None:
        # that worker has been handed its next job before this result came back: kill it mid-training
        if not victims and done < total:
            victims.append(result.pid)
            time.sleep(0.05)
            os.kill(result.pid, signal.SIGKILL)

    search.evaluation_listeners.append(kill_first_worker)
    run_id = search.run()
    assert victims
    with Store.open(tmp_path) as store:
        individuals = store.individuals(run_id)
        classes = store.classes(run_id)
        assert store.run(run_id).status == "finished"
    assert all(not math.isnan(i.accuracy) for i in individuals)
    assert any(c.attempts == 2 for c in classes.values())
    assert sum(i.evaluated for i in individuals) == len(classes)
