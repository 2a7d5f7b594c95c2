"""The steady-state search: generations as commits of arrivals, every class trained once, reproducible in
process, nothing trained lost by a killed driver (a listener's exception, and a SIGKILLed CLI driver), the
worker-side lookup of published classes, on Ray too; and the config switch."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter, deque

import numpy as np
import pytest
from helpers import sigkill, tiny_config, tiny_toml

import lotterysearch as ls
from lotterysearch.api import record_run
from lotterysearch.errors import ConfigError
from lotterysearch.evolution import operators, pareto
from lotterysearch.evolution.loop import SearchLoop
from lotterysearch.evolution.problem import MaskProblem
from lotterysearch.evolution.steady_state import SteadyStateLoop, child_seed
from lotterysearch.execution.evaluators import BreedJob, LocalEvaluator, breed_child
from lotterysearch.storage.store import Store


def steady(generations: int = 3, **overrides) -> ls.SearchConfig:
    return tiny_config(
        evaluator="local", ga={"generations": generations, "mode": "steady_state"}, **overrides
    )


def fields(ind) -> tuple:
    return (ind.id, ind.generation, ind.packed, ind.parents, ind.operator, ind.class_key, ind.accuracy.hex())


def check_consistent(run) -> None:
    """Every generation after 0 commits one population's worth of arrivals; each stored class was trained
    for exactly one individual; the stored fronts are the fronts of everything born so far."""
    everyone = run.individuals()
    classes = run.store.classes(run.id)
    mu = run.config.ga.population
    history = run.history()
    assert [g.gen for g in history] == list(range(run.config.ga.generations + 1))
    for g in history:
        born = [i for i in everyone if i.generation == g.gen]
        assert len(born) == mu and g.evaluated + g.skipped == mu
        assert g.hypervolume == pytest.approx(
            pareto.front_hypervolume([i for i in everyone if i.generation <= g.gen])
        )
        assert set(g.population) <= {i.id for i in everyone if i.generation <= g.gen}
    assert sum(i.evaluated for i in everyone) == len(classes)
    assert {c.individual_id for c in classes.values()} == {i.id for i in everyone if i.evaluated}
    assert {i.class_key for i in everyone} <= set(classes)
    by_key = {i.class_key: i for i in everyone if i.evaluated}
    for key, c in classes.items():  # an individual carries its class's numbers
        assert (by_key[key].accuracy, by_key[key].effective_density) == (c.accuracy, c.effective_density)


def test_a_steady_state_search_commits_each_population_of_arrivals(tmp_path) -> None:
    with ls.search(steady(), tmp_path) as run:
        assert run.status == "finished"
        check_consistent(run)
        children = [i for i in run.individuals() if i.generation > 0]
        assert all(i.origin == "child" and len(i.parents) in (1, 2) for i in children)
        assert sum(not i.evaluated for i in children) > 0  # clones are known classes: looked up, not trained
        assert [i.id for i in children] == list(range(8, 32))


def test_in_process_it_is_reproducible_and_a_child_depends_only_on_its_parents_and_seed(tmp_path) -> None:
    with ls.search(steady(), tmp_path / "a") as a, ls.search(steady(), tmp_path / "b") as b:
        first = [fields(i) for i in a.individuals()]
        assert first == [fields(i) for i in b.individuals()]
        by_id = {i.id: i for i in a.individuals()}
        variation = a.problem.variation()
        for ind in [i for i in a.individuals() if i.generation > 0][:6]:
            parents = [by_id[p].mask for p in ind.parents]
            if len(parents) == 1:  # a child of one parent (both tournaments picked it)
                parents *= 2
            child = breed_child(parents, child_seed(a.config.seed, ind.id), variation)
            assert child.mask.pack() == ind.packed and child.operator == ind.operator


def test_spares_for_the_last_generation_change_nothing_in_order_and_are_dropped(tmp_path) -> None:
    """Spare children keep workers busy while the last generation's stragglers run; in process results
    come in order, so the first arrivals are the budget's own children either way, and the spares that
    came back with the last of them are dropped, not committed."""
    runs = {}
    for spares in (False, True):
        with ls.create_run(steady(), tmp_path / str(spares)) as run:
            cfg = run.config
            ev = LocalEvaluator(run.problem.data, cfg.model, cfg.fitness, cfg.mode, chunk=5)
            run._search = SteadyStateLoop(run.problem, run.store, run.id, ev, spares=spares).restore()
            run.optimize()
            check_consistent(run)
            runs[spares] = [fields(i) for i in run.individuals()], run._search.dropped
    assert runs[True][0] == runs[False][0]
    assert runs[False][1] == 0 and runs[True][1] > 0


@pytest.mark.parametrize("base", [SearchLoop, SteadyStateLoop], ids=["generational", "steady_state"])
def test_a_subclass_sees_every_step_through_the_public_hooks(base, tmp_path) -> None:
    """The loops take every selection, front and evaluation through their public methods, so a subclass
    that times or replays them (the scale benchmark) sees each call, and one that only delegates changes
    nothing."""
    cfg = tiny_config(evaluator="local", ga={"generations": 2})
    calls: Counter[str] = Counter()

    class Watched(base):
        def evaluate(self, new, first_id, halving):
            calls["evaluate"] += 1
            return super().evaluate(new, first_id, halving)

        def arrival(self, res, records):
            calls["arrival"] += 1
            return super().arrival(res, records)

        def select_parents(self, objectives, k):
            calls["parents"] += k
            return super().select_parents(objectives, k)

        def select_survivors(self, objectives, fidelities, k):
            calls["survivors"] += 1
            return super().select_survivors(objectives, fidelities, k)

        def hypervolume(self, objectives):
            calls["hypervolume"] += 1
            return super().hypervolume(objectives)

        def front(self):
            calls["front"] += 1
            return super().front()

    def drive(loop_class: type, ws) -> list[tuple]:
        problem = MaskProblem(cfg)
        with Store.open(ws, create=True) as store:
            run_id = record_run(store, cfg, problem.shapes)
            loop_class(problem, store, run_id, problem.evaluator(local=True)).run()
            return [fields(i) for i in store.individuals(run_id)]

    assert drive(Watched, tmp_path / "watched") == drive(base, tmp_path / "plain")
    mu, children = cfg.ga.population, 2 * cfg.ga.population  # two generations after the seeded one
    assert calls["hypervolume"] == calls["front"] == 3  # one front and its hypervolume per commit
    if base is SearchLoop:  # a generation: mu parents, one evaluation, one survivor selection
        assert (calls["evaluate"], calls["parents"], calls["survivors"]) == (3, children, 2)
        assert calls["arrival"] == 0
    else:  # the seeds evaluated as a generation; then each child from two parents, arriving on its own
        assert (calls["evaluate"], calls["parents"], calls["arrival"]) == (1, 2 * children, children)
        assert calls["survivors"] >= children // (mu // 4)  # every select_every = mu / 4 arrivals


def test_the_worker_skips_what_the_driver_published(synthetic) -> None:
    cfg = steady()
    ev = LocalEvaluator(synthetic, cfg.model, cfg.fitness)
    rng = np.random.default_rng(0)
    shapes = ev.shapes
    mask = ls.Mask({n: rng.random(s) < 0.5 for n, s in shapes.items()})
    clone_only = operators.VariationConfig(cx_rate=0.0, mut_rate=0.0)  # a clone of the first parent
    job = BreedJob(5, (1, 2), (mask.pack(), mask.pack()), seed=11)

    ((first,),) = list(ev.breed(deque([job]), clone_only))
    assert first.objectives is not None and first.objectives.steps == cfg.fitness.steps * len(
        cfg.fitness.init_seeds
    )
    assert (first.id, first.packed, first.operator) == (5, mask.pack(), "clone")
    ev.publish([first.class_key])
    ((second,),) = list(ev.breed(deque([job]), clone_only))
    assert second.objectives is None and second.class_key == first.class_key  # known: not trained


def test_a_killed_steady_state_run_loses_no_trained_class(tmp_path) -> None:
    """Stop the driver in the middle of generation 2 (an exception from a listener: every trained class is
    committed before the listeners hear of it, so the store is what a SIGKILL leaves). The resumed run puts
    each class trained after the last commit into its next generation, trains none of them again, and
    finishes."""
    cfg = steady()
    run = ls.create_run(cfg, tmp_path)

    class Crash(Exception):
        pass

    heard = []

    def crash(result, done, total) -> None:
        heard.append(result.key)
        if run.generation == 1 and len([k for k in heard]) >= 15:
            raise Crash

    with run, pytest.raises(Crash):
        run.optimize(on_evaluation=crash)
    with Store.open(tmp_path) as store:
        assert store.last_generation(run.id).gen == 1
        committed = {i.id for i in store.individuals(run.id)}
        orphans = {k: c for k, c in store.classes(run.id).items() if c.individual_id not in committed}
    assert orphans  # trained after generation 1 was committed
    trained_again = []
    with ls.open_run(tmp_path, run.id) as resumed:
        resumed.resume()
        assert isinstance(resumed._search, SteadyStateLoop)
        check_consistent(resumed)
        recovered = {i.class_key: i for i in resumed.individuals() if i.operator == "recovered"}
        assert set(recovered) == set(orphans)
        for key, c in orphans.items():
            assert (recovered[key].id, recovered[key].generation, recovered[key].evaluated) == (
                c.individual_id,
                2,
                True,
            )
        classes = resumed.store.classes(resumed.id)
        trained_again = [k for k in orphans if classes[k].created != orphans[k].created]
    assert not trained_again


def uncommitted_classes(ws) -> tuple | None:
    """(last generation, classes trained for individuals not yet committed) once there are some."""
    if not (ws / "lotterysearch.sqlite").exists():
        return None
    with Store.open(ws) as store:
        runs = store.runs()
        last = runs and store.last_generation(runs[0].id)
        if not last:
            return None
        committed = {i.id for i in store.individuals(runs[0].id)}
        keys = sorted(c.key for c in store.classes(runs[0].id).values() if c.individual_id not in committed)
        return (last.gen, tuple(keys)) if keys else None


def test_a_sigkilled_steady_state_driver_keeps_every_class_it_received(tmp_path) -> None:
    config = tmp_path / "steady.toml"
    config.write_text(
        # 20 per generation, results in calls of 16: a call's classes are committed before its generation
        tiny_toml(evaluator="local", ga={"mode": "steady_state", "population": 20}, fitness={"steps": 800})
    )
    ws = tmp_path / "ws"
    driver = subprocess.Popen(
        [sys.executable, "-m", "lotterysearch.cli", "search", str(config), "--workspace", str(ws)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline, seen = time.monotonic() + 300, None
        while True:
            assert driver.poll() is None, "the driver finished before it could be killed: slow it down"
            assert time.monotonic() < deadline, "timed out waiting for generation 2 to train"
            now = uncommitted_classes(ws)
            if now is not None and now == seen:  # the same classes uncommitted over two looks: kill now
                break
            seen = now
            time.sleep(0.2)
        sigkill(driver)
    finally:
        sigkill(driver)
    with Store.open(ws) as store:
        run_id = store.runs()[0].id
        committed = {i.id for i in store.individuals(run_id)}
        kept = {c.key: c for c in store.classes(run_id).values() if c.individual_id not in committed}
    assert kept
    with ls.open_run(ws, run_id) as resumed:
        resumed.resume()
        check_consistent(resumed)
        recovered = {i.class_key for i in resumed.individuals() if i.operator == "recovered"}
        classes = resumed.store.classes(run_id)
    assert set(kept) <= recovered
    assert all(classes[k].created == c.created for k, c in kept.items())  # none trained again


def test_a_steady_state_search_on_ray_breeds_on_the_actors(ray_local, tmp_path) -> None:
    cfg = tiny_config(ga={"generations": 2, "mode": "steady_state"}, fitness={"steps": 20})
    with ls.create_run(cfg, tmp_path) as run:
        nodes = []
        run.optimize(on_evaluation=lambda r, done, total: nodes.append((r.node, r.pid)))
        assert run.status == "finished"
        check_consistent(run)
        assert nodes and all(node != "local" and pid != os.getpid() for node, pid in nodes)
        assert sum(not i.evaluated for i in run.individuals() if i.generation > 0) > 0
        assert run._search.wasted <= 2  # a class two actors trained at once is recorded once


def test_the_mode_is_checked() -> None:
    with pytest.raises(ConfigError) as e:
        tiny_config(ga={"mode": "async"})
    assert str(e.value) == "field 'ga.mode' must be one of generational, steady_state, got 'async'"
    with pytest.raises(ConfigError) as e:
        tiny_config(ga={"mode": "steady_state"}, fitness={"successive_halving": True})
    assert str(e.value) == (
        "field 'ga.mode': steady_state does not do successive halving; set fitness.successive_halving = false"
        ' or ga.mode = "generational"'
    )
    assert tiny_config().ga.mode == "generational"


def test_a_quarter_more_children_than_run_wait_for_the_workers(tmp_path) -> None:
    """The default in flight: one child per call slot (the evaluator's capacity), at most a population's
    worth running, and a quarter of that more queued so that a freed worker need not wait for the driver."""

    class Sized(LocalEvaluator):
        def __init__(self, capacity: int) -> None:
            self.size = capacity

        @property
        def capacity(self) -> int:
            return self.size

    with ls.create_run(steady(), tmp_path) as run:  # population 8

        def in_flight(capacity: int, given: int | None = None) -> int:
            loop = SteadyStateLoop(run.problem, run.store, run.id, Sized(capacity), in_flight=given)
            return loop._capacity()

        assert [in_flight(c) for c in (1, 4, 7, 8, 100)] == [2, 5, 8, 10, 10]
        assert in_flight(0) == 8 and in_flight(100, given=3) == 3
