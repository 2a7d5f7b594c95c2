"""The Python API: a run is created, driven, interrupted, resumed and read as a user would, in process."""

from __future__ import annotations

from dataclasses import replace

import pytest
from helpers import tiny_config

import lotterysearch as ls
from lotterysearch import api
from lotterysearch.errors import ConfigError, StoreError
from lotterysearch.evolution import pareto
from lotterysearch.evolution.loop import GenerationReport, SearchLoop
from lotterysearch.evolution.problem import MaskProblem
from lotterysearch.readers import report
from lotterysearch.settings import SearchConfig, config_hash
from lotterysearch.storage.store import STORE_FILENAME, Store


def tiny(generations: int = 3) -> SearchConfig:
    return tiny_config(evaluator="local", ga={"generations": generations})


def fields(ind: ls.Individual) -> tuple:
    return (ind.id, ind.generation, ind.packed, ind.parents, ind.operator, ind.class_key, ind.accuracy)


def test_search_front_history_and_individuals_agree(tmp_path) -> None:
    reports: list[GenerationReport] = []
    with ls.search(tiny(), tmp_path, progress=reports.append) as run:
        assert (run.id, run.status, run.generation) == ("tiny-001", "finished", 3)
        assert [r.generation for r in reports] == [0, 1, 2, 3]
        everyone = run.individuals()
        assert len(everyone) == 8 * 4 and [i.id for i in everyone] == list(range(32))
        front = run.front()
        assert front == pareto.front(everyone)
        assert [r["id"] for r in report.front_rows(run.store, run.id)] == [i.id for i in front]
        for ind in front:  # a typed result: the mask itself and its measured numbers
            assert ind.mask.density() == ind.density and ind.mask.effective_density() == ind.effective_density
        history = run.history()
        assert [g.gen for g in history] == [0, 1, 2, 3]
        for g in history:  # each generation's hypervolume is that of everything born up to it
            upto = [i for i in everyone if i.generation <= g.gen]
            assert g.hypervolume == pytest.approx(pareto.front_hypervolume(upto))
            assert g.hypervolume == reports[g.gen].hypervolume
        children = [i for i in everyone if i.generation > 0]
        assert all(i.origin == "child" and len(i.parents) in (1, 2) for i in children)
        assert all(p < i.id for i in children for p in i.parents)
    with pytest.raises(StoreError, match="is closed"):
        run.individuals()


def test_optimize_in_steps_then_resume_equals_one_uninterrupted_run(tmp_path) -> None:
    run = ls.create_run(tiny(), tmp_path / "a")
    assert run.generation == -1 and run.individuals() == []
    run.optimize(2)  # the seeded generation 0, then generation 1
    assert (run.status, run.generation) == ("interrupted", 1)
    run.close()
    with ls.open_run(tmp_path / "a", "tiny-001") as again:
        again.resume()
        assert (again.status, again.generation) == ("finished", 3)
        stepped = [fields(i) for i in again.individuals()]
        with pytest.raises(StoreError, match=r"^run 'tiny-001' has already finished; nothing to resume$"):
            again.resume()
    with ls.search(tiny(), tmp_path / "b") as whole:
        assert [fields(i) for i in whole.individuals()] == stepped


def test_a_run_recorded_alone_is_driven_by_its_callers_loop_and_read_back(tmp_path) -> None:
    """``record_run`` records the run and nothing else; a tool that drives a loop of its own on it (the scale
    benchmark) leaves a run that the API reads as any other."""
    cfg = tiny()
    problem = MaskProblem(cfg)
    with Store.open(tmp_path, create=True) as store:
        run_id = api.record_run(store, cfg, problem.shapes)
        assert store.last_generation(run_id) is None and store.run(run_id).config_hash == config_hash(cfg)
        SearchLoop(problem, store, run_id, problem.evaluator(local=True)).run(2)  # generations 0 and 1
    with ls.open_run(tmp_path, run_id) as run:
        assert (run.id, run.config, run.generation) == ("tiny-001", cfg, 1)
        assert len(run.individuals()) == 2 * cfg.ga.population


def test_a_second_driver_is_refused_while_the_first_drives(tmp_path) -> None:
    refused: list[str] = []

    def meanwhile(r: GenerationReport) -> None:
        if r.generation == 0:
            with ls.open_run(tmp_path, r.run_id) as other:
                with pytest.raises(StoreError) as e:
                    other.optimize()
                refused.append(str(e.value))

    with ls.search(tiny(1), tmp_path, progress=meanwhile) as run:
        assert run.status == "finished"
    (message,) = refused
    assert message.startswith("run 'tiny-001' is being driven by pid ")


def test_bad_input_is_one_line_and_writes_nothing(tmp_path) -> None:
    with pytest.raises(
        ConfigError, match=r"^field 'model': mlp:20-12-4 takes 20 inputs, dataset synthetic has 16$"
    ):
        ls.create_run(replace(tiny(), model="mlp:20-12-4"), tmp_path / "ws")
    assert not (tmp_path / "ws" / STORE_FILENAME).exists()
    ls.search(tiny(0), tmp_path / "ws").close()
    with pytest.raises(StoreError, match=r"^unknown run 'tiny-009' in workspace '.*ws'; known: tiny-001$"):
        ls.open_run(tmp_path / "ws", "tiny-009")
    with pytest.raises(ConfigError, match=r"^config file 'missing.toml' does not exist$"):
        ls.search("missing.toml", tmp_path / "ws")


def test_a_search_on_a_convnet_runs_resumes_and_keys_channels_as_units(tmp_path) -> None:
    from lotterysearch.core import canon

    cfg = tiny_config(dataset="digits", model="conv:8x8x1:4-M:6-10", evaluator="local", ga={"generations": 2})
    run = ls.create_run(cfg, tmp_path)
    run.optimize(2)
    run.close()
    with ls.open_run(tmp_path, "tiny-001") as again:
        again.resume()
        assert (again.status, again.generation) == ("finished", 2)
        everyone = again.individuals()
        assert len(everyone) == 8 * 3
        assert everyone[0].mask.shapes == {"conv1": (4, 1, 3, 3), "fc1": (6, 64), "fc2": (10, 6)}
        for ind in everyone:  # conv keys: channels interchangeable, kernel patterns as edge labels
            assert ind.class_key == canon.class_key(ind.mask)
        assert again.front() == pareto.front(everyone)
