"""Evaluators: in process (``LocalEvaluator``) and on Ray (``RayEvaluator``) train the same masks to the same
objectives bit for bit, so where a search runs never changes what it finds; and the config picks which."""

from __future__ import annotations

import math
import os
from dataclasses import astuple

import numpy as np
import pytest
from helpers import tiny_config

from lotterysearch import api
from lotterysearch.core.masks import Mask, layerwise_shuffle
from lotterysearch.core.models import build_model
from lotterysearch.evolution.problem import MaskProblem
from lotterysearch.execution.cluster import RayEvaluator
from lotterysearch.execution.evaluators import LocalEvaluator
from lotterysearch.pruning.pruners import prune
from lotterysearch.settings import FitnessConfig

SPEC = tiny_config().model
FITNESS = FitnessConfig(steps=20, batch_size=64, init_seeds=(0, 1))


def bits(objectives) -> tuple:
    """The objectives with every float as its exact bit pattern (NaN-safe, -0.0 distinct from 0.0)."""
    return tuple(v.hex() if isinstance(v, float) else v for v in astuple(objectives))


@pytest.fixture(scope="module")
def jobs() -> list[tuple[str, Mask]]:
    """SynFlow masks at three compressions, their layerwise shuffles, and a uniformly random mask."""
    rng = np.random.default_rng(0)
    synflow = {rho: prune(build_model(SPEC, 0), "synflow", rho, iterations=10) for rho in (3, 10, 30)}
    out = [(f"synflow-{rho}", m) for rho, m in synflow.items()]
    out += [(f"random-{rho}", layerwise_shuffle(m, rng)) for rho, m in synflow.items()]
    shapes = synflow[3].shapes
    out.append(("uniform", Mask({n: rng.random(s) < 0.5 for n, s in shapes.items()})))
    return out


def by_key(results) -> dict[str, tuple]:
    results = list(results)
    assert len({r.key for r in results}) == len(results)  # one result per job
    return {r.key: bits(r.objectives) for r in results}


def test_local_and_ray_evaluators_give_the_same_objectives_bit_for_bit(ray_local, synthetic, jobs) -> None:
    keys = {k for k, _ in jobs}
    local = LocalEvaluator(synthetic, SPEC, FITNESS)
    local_results = list(local.evaluate(jobs))
    assert {r.node for r in local_results} == {"local"} and {r.pid for r in local_results} == {os.getpid()}
    assert all(r.attempts == 1 for r in local_results)
    full = by_key(local_results)
    short = by_key(local.evaluate(jobs, steps=7))
    one_at_a_time = by_key(LocalEvaluator(synthetic, SPEC, FITNESS, chunk=1).evaluate(jobs))
    assert set(full) == set(short) == keys
    assert one_at_a_time == full  # a mask's objectives do not depend on the masks batched with it

    ray = RayEvaluator(synthetic, SPEC, FITNESS)
    try:
        ray_results = list(ray.evaluate(jobs))
        ray_short = by_key(ray.evaluate(jobs, steps=7))
    finally:
        ray.close()
    assert os.getpid() not in {r.pid for r in ray_results}  # trained in the actors, not here
    assert by_key(ray_results) == full
    assert ray_short == short
    # the override is a shorter budget, not the configured one
    for key, _ in jobs:
        o_full, o_short = full[key], short[key]
        assert o_full[4] == FITNESS.steps * 2 and o_short[4] == 7 * 2  # steps, summed over the 2 init seeds
        assert o_full[1:3] == o_short[1:3]  # the same mask: density and effective density
    assert any(full[k][0] != short[k][0] for k in keys)  # accuracy moved with the budget
    assert all(0 <= float.fromhex(o[0]) <= 1 and not math.isnan(float.fromhex(o[3])) for o in full.values())


def test_an_empty_job_list_yields_nothing(synthetic) -> None:
    assert list(LocalEvaluator(synthetic, SPEC, FITNESS).evaluate([])) == []
    assert list(LocalEvaluator(synthetic, SPEC, FITNESS).evaluate([], steps=5)) == []
    # nothing to train: Ray is not even joined (there is no cluster at this address)
    nowhere = RayEvaluator(synthetic, SPEC, FITNESS, address="127.0.0.1:1")
    assert list(nowhere.evaluate([])) == [] and list(nowhere.evaluate([], steps=5)) == []
    nowhere.close()


def test_a_search_stores_the_same_individuals_and_front_locally_and_on_ray(ray_local, tmp_path) -> None:
    cfg = tiny_config(ga={"generations": 2}, fitness={"steps": 20})
    stored = {}
    for where, local in (("local", True), ("ray", None)):
        with api.create_run(cfg, tmp_path / where, local=local) as run:
            kind = LocalEvaluator if local else RayEvaluator
            assert isinstance(run._loop().evaluator, kind)
            run.optimize()
            assert run.status == "finished"
            individuals = run.individuals()
            history = run.history()
            stored[where] = {
                "run": run.id,
                "individuals": [
                    (i.id, i.class_key, i.accuracy.hex(), i.fidelity, i.evaluated, i.parents, i.origin)
                    for i in individuals
                ],
                "front": [i.id for i in run.front()],
                "generations": [(g.population, g.front, g.hypervolume.hex()) for g in history],
            }
    assert len(stored["local"]["individuals"]) == 8 * 3
    assert stored["local"]["front"]
    assert stored["local"] == stored["ray"]


def test_the_config_picks_the_evaluator_and_local_overrides_it(synthetic) -> None:
    on_ray, in_process = tiny_config(), tiny_config(evaluator="local")
    assert on_ray.evaluator == "ray"
    assert isinstance(MaskProblem(on_ray, synthetic).evaluator(), RayEvaluator)
    assert isinstance(MaskProblem(in_process, synthetic).evaluator(), LocalEvaluator)
    assert isinstance(MaskProblem(on_ray, synthetic).evaluator(local=True), LocalEvaluator)  # --local
    assert isinstance(MaskProblem(in_process, synthetic).evaluator(local=False), RayEvaluator)
    ev = MaskProblem(in_process, synthetic).evaluator()
    assert ev.data is synthetic
    assert (ev.model_spec, ev.fitness, ev.mode) == (on_ray.model, on_ray.fitness, "forward")
    # the Ray address: the argument, else the config's
    at = tiny_config(ray={"address": "10.0.0.1:6379"})
    assert MaskProblem(at, synthetic).evaluator().address == "10.0.0.1:6379"
    assert MaskProblem(at, synthetic).evaluator(address="10.0.0.2:6379").address == "10.0.0.2:6379"
    assert MaskProblem(on_ray, synthetic).evaluator().address is None


def test_create_run_with_local_needs_no_ray(tmp_path) -> None:
    """An unreachable Ray address in the config is no obstacle when the run trains in process."""
    cfg = tiny_config(ray={"address": "127.0.0.1:1"}, evaluator="local")
    with api.create_run(cfg, tmp_path) as run:
        assert isinstance(run._loop().evaluator, LocalEvaluator)
        assert run.status == "running" and run.generation == -1
