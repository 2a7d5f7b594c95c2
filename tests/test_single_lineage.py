"""The population-of-one control (``ga.control = "single_lineage"``): one lineage, one child per generation
kept unless dominated, until the given training steps are stored; resumable like any run."""

from __future__ import annotations

import pytest
from helpers import tiny_config

import lotterysearch as ls
from lotterysearch import api
from lotterysearch.errors import ConfigError
from lotterysearch.evolution.diagnostics import founders_of
from lotterysearch.evolution.single_lineage import dominates
from lotterysearch.storage.store import Store


def control(steps: int, **ga):
    return tiny_config(evaluator="local", ga={"control": "single_lineage", "control_steps": steps, **ga})


def test_it_spends_the_steps_it_is_given_on_one_lineage(tmp_path) -> None:
    cfg = control(300)  # 10 trainings of 30 steps
    reports = []
    with api.create_run(cfg, tmp_path, local=True) as run:
        run.optimize(progress=reports.append)
        gens = run.history()
        everyone = {i.id: i for i in run.individuals()}
        classes = run.store.classes(run.id)
        assert run.status == "finished"
    assert sum(c.steps for c in classes.values()) == 300  # every training is 30 steps: exactly the budget
    assert sum(r.steps for r in reports) == 300
    assert all(len(g.population) == 1 for g in gens)
    assert len(everyone) == len(gens)  # one individual per generation
    assert set(founders_of(everyone).values()) == {frozenset({0})}  # one lineage, from the one founder
    assert everyone[0].origin == "synflow:seed=0:rho=3" and everyone[0].parents == ()
    for g_prev, g in zip(gens, gens[1:], strict=False):
        (parent,) = g_prev.population
        child = everyone[max(i for i in everyone if everyone[i].generation == g.gen)]
        assert child.parents == (parent,) and child.operator != "clone"
        kept = g.population[0]
        assert kept == (parent if dominates(everyone[parent], child) else child.id)
    assert reports[0].generations == 9  # the founder, then 9 trainings if every child is new


def test_the_control_of_a_run_gets_its_steps_and_resumes_exactly(tmp_path) -> None:
    with api.create_run(tiny_config(evaluator="local", ga={"generations": 1}), tmp_path, local=True) as run:
        run.optimize()
        spent = api.stored_steps(run)
        cfg = ls.single_lineage_config(run)
    assert spent > 0 and spent % 30 == 0  # one 30-step training per class
    assert (cfg.ga.control, cfg.ga.control_steps, cfg.name) == ("single_lineage", spent, "tiny-control")
    with api.create_run(cfg, tmp_path / "a", local=True) as a:
        a.optimize(3)
        rid = a.id
    with api.open_run(tmp_path / "a", rid, local=True) as a:
        a.resume()
    with api.create_run(cfg, tmp_path / "b", local=True) as b:
        b.optimize()
    with Store.open(tmp_path / "a") as sa, Store.open(tmp_path / "b") as sb:
        ga = [(g.population, g.hypervolume) for g in sa.generations(rid)]
        gb = [(g.population, g.hypervolume) for g in sb.generations(rid)]
        assert ga == gb
        assert sum(c.steps for c in sa.classes(rid).values()) >= spent


def test_control_config_is_checked() -> None:
    with pytest.raises(
        ConfigError, match="field 'ga.control' must be one of none, single_lineage, got 'one'"
    ):
        tiny_config(ga={"control": "one"})
    with pytest.raises(
        ConfigError, match=r"field 'ga.control_steps' must be at least one training \(.* = 30\)"
    ):
        control(10)


def test_the_dashboard_plans_no_generation_count_for_a_control(tmp_path) -> None:
    from lotterysearch.readers.dashboard.views import planned, runs_view

    with api.create_run(control(60), tmp_path, local=True) as run:
        run.optimize()
        assert planned(run.record) is None
        (row,) = runs_view(run.store)["runs"]
        assert row["planned"] is None and row["generations"] == 1  # the founder, then one child: 60 steps
