"""The lottery-ticket-regime section: its budgets and verdicts by hand, then end to end on a small MLP."""

from __future__ import annotations

import math

import pytest

from experiments import ga
from experiments import lenet_ticket as lt
from experiments.common import Context
from lotterysearch.config import TrainingConfig


def test_every_baseline_is_paired_with_the_search_by_init() -> None:
    d = lt.paired({0: 0.98, 1: 0.97, 2: 0.99}, {0: 0.97, 1: 0.965, 2: 0.98, 7: 0.5})
    diffs = [0.01, 0.005, 0.01]
    mean = sum(diffs) / 3
    sd = math.sqrt(sum((x - mean) ** 2 for x in diffs) / 2)
    assert d["n"] == 3 and d["mean"] == pytest.approx(mean) and d["std"] == pytest.approx(sd)
    assert ga.verdict(d) == "better"  # 0.00833 > 2 · 0.00167
    assert ga.verdict(lt.paired({0: 0.9, 1: 0.9}, {0: 0.905, 1: 0.896})) == "indistinguishable"
    assert ga.verdict(lt.paired({0: 0.9}, {1: 0.8})) == "no data"  # no θ₀ in common


def test_imp_takes_eighteen_rounds_to_the_papers_sparsest_ticket() -> None:
    # layerwise 20% (output layer 10%) of LeNet-300-100: 0.8^18 = 1.8% of the hidden layers' weights
    assert lt.imp_rounds(lt.MODEL, [1 / d for d in lt.DENSITIES]) == 18


def test_the_seeds_sit_on_the_dense_lineages_ladder_just_below_each_density() -> None:
    # k magnitude prunes of 49% keep 0.51^k of a layer: the seeds at 0.51^2 and 0.51^4, and every lineage's
    # rungs 4, 5, 6 at 6.8, 3.5, 1.8% (hidden layers), each just below a bound of 7.03, 3.61, 1.89%
    s = lt.SETTINGS["small"]
    assert lt.seed_compressions(s.strength, s.seed_rungs) == (1.0, 3.845, 14.782)
    rungs = [(1 - s.strength) ** k for k in (4, 5, 6)]
    assert all(0.9 * d < r <= d for r, d in zip(rungs, lt.DENSITIES, strict=True))


def test_the_search_is_in_ticket_mode_on_theta0_with_the_dense_mask_among_its_seeds(tmp_path) -> None:
    s = lt.SETTINGS["small"]
    cfg = lt.search_config(s, 2, "ga_random_prune", tmp_path, "")
    assert cfg.fitness.mode == "ticket" and cfg.fitness.init_seeds == (2,) and cfg.seeding.init_seeds == (2,)
    assert 1.0 in cfg.seeding.compressions and cfg.seeding.random_share == 0
    assert cfg.ga.mutations == ("prune",) and cfg.ga.mutation_rate == 1.0 and not cfg.ga.align
    assert lt.search_config(s, 2, "ga", tmp_path, "").ga.mutations == ("magnitude_prune",)
    assert lt.search_config(s, 2, "ga_no_crossover", tmp_path, "").ga.crossover_rate == 0


def test_the_section_runs_every_method_at_the_searchs_steps_and_renders(tmp_path) -> None:
    s = lt.LeNetTicketSettings(
        inits=(0, 1),
        fitness_steps=10,
        population=4,
        generations=3,
        densities=(0.3,),
        variants=("ga", "ga_random_prune"),
        confirm=TrainingConfig(steps=20, optimizer="adam", lr=0.01, batch_size=32, eval_every=10, fused=True),
        model="mlp:40-100-100-10",
        dataset="mnist1d",
        evaluator="local",
    )
    ctx = Context("small", tmp_path, "", progress=lambda line: None)
    res = lt.measure(s, ctx)
    assert res["imp_full"] is None  # no section 5 results in this root
    for row in res["rows"]:
        budget = row["steps"]["ga"]
        assert budget > 0 and budget % 10 == 0
        # IMP's short rounds share the search's steps: rounds x round length ≤ S, within one round's rounding
        assert (
            row["imp_rounds"] * row["imp_round_steps"]
            <= budget
            < (row["imp_rounds"] + 1) * row["imp_round_steps"] + row["imp_rounds"]
        )
        at = row["at"]["0.3"]
        assert set(at["test"]) == {"ga", "ga_random_prune", "imp_short", "synflow", "random"}
        assert all(m <= 0.3 + 1e-4 for m in at["density"].values())
        assert at["density"]["synflow"] == pytest.approx(0.3, abs=1e-3)
        assert 0 < at["fresh_init"] <= 1 and all(0 < a <= 1 for a in at["test"].values())
        o = at["with_imp_short"]["ga"]
        assert o["kappa"] == pytest.approx((o["jaccard"] - o["chance"]) / (1 - o["chance"]))
    rendered = lt.render(res, ctx)
    assert "| GA: magnitude prune + layer crossover | 2/2 |" in rendered.body
    assert "IMP, full rounds" not in rendered.body  # no section 5 results: no row, no invented numbers
    assert rendered.answer.startswith("**") and "Target 2" in rendered.answer
