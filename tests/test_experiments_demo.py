"""The demo-against-its-seeds section: the choice of masks, the paired gains and the verdict, then the section
end to end on the quick config (in process)."""

from __future__ import annotations

import math

import pytest

from experiments import demo_gain
from experiments.common import ROOT, Context
from lotterysearch.storage.store import Individual


def ind(i: int, accuracy: float, density: float, fidelity: float = 1.0) -> Individual:
    return Individual("r", i, 0, b"", (), "clone", "child", "k", accuracy, density, density, True, fidelity)


def test_the_best_at_a_density_is_the_fittest_full_fidelity_mask_at_or_below_it() -> None:
    people = [
        ind(0, 0.50, 0.1000),
        ind(1, 0.60, 0.10004),  # SynFlow's rounded count: a hair above 1/10 still counts
        ind(2, 0.70, 0.1002),  # above 1/10 + 1e-4
        ind(3, 0.90, 0.05, fidelity=0.25),  # a lower rung of successive halving
        ind(4, 0.60, 0.02),  # ties with 1: the first id wins
    ]
    assert demo_gain.best_at(people, 10).id == 1
    assert demo_gain.best_at(people, 50).id == 4
    assert demo_gain.best_at(people, 100) is None


def run_row(operators: str, seed: int, seeds_test: dict, search_test: dict, fit: tuple[float, float]) -> dict:
    best = {
        "seeds": {"fitness": fit[0], "test": seeds_test},
        "search": {"fitness": fit[1], "test": search_test},
    }
    return {"operators": operators, "seed": seed, "hypervolume": [0.4, 0.5], "best": {"10": best}}


def test_gains_are_paired_by_ga_seed_and_init_and_the_verdict_needs_2_se_and_the_noise() -> None:
    res = {
        "compressions": [10],
        "ga_seeds": [0, 1],
        "runs": [
            run_row("classic", 0, {"100": 0.50, "101": 0.54}, {"100": 0.56, "101": 0.58}, (0.5, 0.6)),
            run_row("classic", 1, {"100": 0.52, "101": 0.50}, {"100": 0.57, "101": 0.57}, (0.5, 0.7)),
            run_row("structured", 0, {"100": 0.50, "101": 0.54}, {"100": 0.51, "101": 0.53}, (0.5, 0.6)),
        ],
    }
    res["runs"][2]["fitness_inits"] = 2  # a fitness averaged over two inits: its noise is σ/√2
    g = demo_gain.gains(res, "classic", 10)
    diffs = [0.06, 0.04, 0.05, 0.07]
    mean = sum(diffs) / 4
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / 3)
    assert g["gain"]["mean"] == pytest.approx(mean) and g["gain"]["n"] == 4
    assert g["se"] == pytest.approx(sd / 2)
    assert g["fitness_gain"]["mean"] == pytest.approx(0.15)
    # the noise: each mask's std over its two inits (|a - b| / √2), averaged over the four masks
    assert g["noise"] == pytest.approx((0.04 + 0.02 + 0.02 + 0.0) / math.sqrt(2) / 4)
    assert g["improves"]
    weak = demo_gain.gains(res, "structured", 10)  # +0.01 and -0.01: no gain
    assert weak["gain"]["mean"] == pytest.approx(0.0) and not weak["improves"]
    assert weak["noise"] == pytest.approx((0.04 + 0.02) / 2 / math.sqrt(2) / math.sqrt(2))
    verdicts = {(o, 10): demo_gain.gains(res, o, 10) for o in demo_gain.OPERATORS}
    answer = demo_gain.demo_answer(res, verdicts)
    assert answer.startswith("**Yes: the demo search improves on its seeds at every seed density.**")
    assert "plus layer-density and neuron grow/prune operators: improves nowhere" in answer


def test_the_section_runs_the_quick_search_with_both_operator_sets_and_renders(tmp_path) -> None:
    s = demo_gain.DemoSettings(
        ga_seeds=(0,),
        retrain_seeds=(100, 101),
        compressions=(10,),
        generations=1,
        evaluator="local",
        config=ROOT / "configs" / "quick.toml",
        variants=("classic", "structured_proxy"),
    )
    ctx = Context("small", tmp_path, "", progress=lambda line: None)
    res = demo_gain.measure(s, ctx)
    assert [r["operators"] for r in res["runs"]] == ["classic", "structured_proxy"]
    assert [(r["fitness_steps"], r["fitness_inits"]) for r in res["runs"]] == [(115, 1), (200, 2)]
    for row in res["runs"]:
        assert len(row["hypervolume"]) == 2  # generation 0 and 1
        best = row["best"]["10"]
        assert (
            best["seeds"]["density"] <= 0.1 + 1e-4 and best["search"]["fitness"] >= best["seeds"]["fitness"]
        )
        assert sorted(best["search"]["test"]) == ["100", "101"]
        assert all(0 < a <= 1 for a in best["seeds"]["test"].values())
    rendered = demo_gain.render(res, ctx)
    assert (tmp_path / "figures" / "demo_gain.png").stat().st_size > 0
    assert "| the demo's operators (move, grow/prune; layer, neuron crossover) | 1/10 |" in rendered.body
    assert "| those, with the proxy's fitness (200 steps, 2 inits) | 1/10 |" in rendered.body
    assert "plus layer-density" not in rendered.body  # a variant not run is not shown
