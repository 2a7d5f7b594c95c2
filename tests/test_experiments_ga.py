"""The GA experiment's helpers (experiments/ga.py) on hand-made cases: equal-compute accounting, A(d), the
hypervolume read at a budget, paired verdicts, and a method's front as ``pareto.front`` of its candidates.
No Ray. (IMP's tickets from one trajectory, which the experiment uses: tests/test_pruning.py.)"""

from __future__ import annotations

import math

import pytest

from experiments.ga import (
    Candidate,
    accuracy_at_density,
    affordable,
    best_at_density,
    headline,
    hypervolume_curve,
    mean_best_accuracy,
    paired,
    spread_order,
    step_value,
    verdict,
)
from lotterysearch.evolution import pareto
from lotterysearch.evolution.pareto import hypervolume


def test_spread_order_is_a_permutation_that_takes_both_ends_then_midpoints() -> None:
    assert spread_order(0) == []
    assert spread_order(1) == [0]
    assert spread_order(2) == [0, 1]
    assert spread_order(5) == [0, 4, 2, 1, 3]
    for n in range(1, 30):
        order = spread_order(n)
        assert sorted(order) == list(range(n))
        assert order[: min(n, 2)] == [0, n - 1][: min(n, 2)]


def test_affordable_is_the_longest_prefix_within_budget() -> None:
    assert affordable([3, 3, 3], 7) == 2
    assert affordable([3, 3, 3], 9) == 3
    assert affordable([3, 3, 3], 100) == 3
    assert affordable([10, 1], 5) == 0  # a first item over budget stops everything after it too
    assert affordable([], 5) == 0
    # an IMP trajectory (charged whole) then its tickets: 2760 + 115·k ≤ 3000 → 2 tickets
    assert affordable([2760, 115, 115, 115], 3000) == 3


def test_accuracy_at_density_is_the_best_accuracy_at_or_below_the_density() -> None:
    points = [(0.5, 0.3), (0.4, 0.1), (0.45, 0.1), (0.3, 0.01)]
    assert best_at_density(points, 0.1) == 2
    assert accuracy_at_density(points, 0.1) == 0.45
    assert best_at_density(points, 0.05) == 3
    assert best_at_density(points, 1.0) == 0
    assert best_at_density(points, 0.001) is None
    assert math.isnan(accuracy_at_density(points, 0.001))
    # ties in accuracy go to the sparser mask; a density equal to d up to rounding counts as ≤ d
    assert best_at_density([(0.4, 0.1), (0.4, 0.05)], 0.1) == 1
    assert best_at_density([(0.4, 450 / 15000)], 0.03) == 0


def test_mean_best_accuracy_integrates_a_of_d_and_is_the_hypervolume_at_one() -> None:
    points = [(0.5, 0.05), (0.3, 0.01), (0.9, 0.5)]
    # A(d) = 0 below 0.01, 0.3 on [0.01, 0.05), 0.5 on [0.05, 0.1]: (0.3·0.04 + 0.5·0.05) / 0.1
    assert mean_best_accuracy(points, 0.1) == pytest.approx(0.37)
    # over [0, 1]: + 0.9 on [0.5, 1]
    assert mean_best_accuracy(points, 1.0) == pytest.approx(0.3 * 0.04 + 0.5 * 0.45 + 0.9 * 0.5)
    assert mean_best_accuracy(points, 1.0) == pytest.approx(hypervolume(points, (0.0, 1.0)))
    assert mean_best_accuracy([(0.9, 0.5)], 0.1) == 0.0


def test_step_value_reads_the_last_value_at_or_before_x() -> None:
    xs, ys = [10, 20], [1.0, 2.0]
    assert step_value(xs, ys, 5) == 0.0
    assert math.isnan(step_value(xs, ys, 5, math.nan))
    assert step_value(xs, ys, 10) == 1.0
    assert step_value(xs, ys, 19.9) == 1.0
    assert step_value(xs, ys, 25) == 2.0


def test_hypervolume_curve_charges_unscored_training_and_ignores_dominated_points() -> None:
    steps, hv = hypervolume_curve([(100, None), (10, (0.5, 0.5)), (10, (0.4, 0.6)), (10, (0.3, 0.1))])
    assert steps == [100, 110, 120, 130]
    assert hv == pytest.approx([0.0, 0.25, 0.25, 0.25 + 0.3 * 0.4])


def test_paired_verdicts() -> None:
    d = paired([0.5, 0.6, 0.7], [0.4, 0.5, 0.6])
    assert d["mean"] == pytest.approx(0.1) and d["std"] == pytest.approx(0.0, abs=1e-12) and d["n"] == 3
    assert verdict(d) == "better"
    assert verdict(paired([0.4, 0.5], [0.5, 0.6])) == "worse"
    assert verdict(paired([0.1, -0.1, 0.05], [0, 0, 0])) == "indistinguishable"  # mean 0.017, SE 0.060
    assert verdict(paired([0.9], [0.1])) == "indistinguishable"  # one replicate: no error estimate
    assert verdict(paired([math.nan, 0.5], [0.1, 0.1])) == "no data"  # a method without a mask that sparse
    # 2 SE exactly is not beyond 2 SE: differences 1 and 3 have mean 2, SE 1
    assert verdict({"mean": 2.0, "std": math.sqrt(2), "n": 2}) == "indistinguishable"


def _verdicts(ticket: list[str], imp: list[str], synflow: list[str], align: list[str]) -> dict:
    return {
        "ticket": ticket,
        "own_gain": [0.11, 0.09, math.nan],
        "imp": imp,
        "synflow": synflow,
        "random": ["better"] * 3,
        "align": align,
    }


def test_headline_follows_the_paired_verdicts() -> None:
    same, eq = ["indistinguishable"] * 5, ["indistinguishable"] * 3
    no = headline([_verdicts(["worse", "indistinguishable", "worse"], ["better", *eq[:2]], eq, same)])
    assert no.startswith("**No, not at equal training compute.** The lottery ticket, IMP's mask trained from")
    assert "at 2 of 3 fixed densities" in no
    assert "the GA's masks are better at 1, indistinguishable at 2 of 3 densities against IMP's masks" in no
    assert "retrained from fresh inits IMP's masks lose 0.09 to 0.11 of test accuracy" in no
    assert "at equal compute, evolving masks does not beat scoring more SynFlow masks" in no
    assert "makes no measurable difference" in no
    partly = headline([_verdicts(eq, ["worse", *eq[:2]], eq, same)])
    assert partly.startswith("**Partly.**")
    yes = headline([_verdicts(eq, eq, ["better", *eq[:2]], ["better", *same[:4]])])
    assert yes.startswith("**Yes, at these settings.**")
    assert "the aligned GA is better at 1, indistinguishable at 4 of 5 comparisons" in yes
    none = headline([_verdicts(["no data"] * 3, eq, eq, same)])
    assert none.startswith("**Not measured at these settings.**")
    seeds = headline([_verdicts(eq, eq, eq, same)])
    assert seeds.startswith("**As good as the ticket, but not beyond its seeds.**")


def test_a_methods_front_lists_each_point_once_by_density() -> None:
    """What the experiment retrains and scores: the non-dominated masks, duplicates of a point once (the
    first), sparsest first."""
    cands = [
        Candidate(0, b"a", 0.10, 0.50, "synflow"),
        Candidate(1, b"b", 0.10, 0.40, "synflow"),  # dominated by 0
        Candidate(2, b"c", 0.01, 0.30, "synflow"),
        Candidate(3, b"d", 0.10, 0.50, "random"),  # the same point as 0
        Candidate(4, b"e", 0.50, 0.60, "synflow"),
        Candidate(5, b"f", 0.60, 0.55, "synflow"),  # dominated by 4
    ]
    assert [c.id for c in pareto.front(cands)] == [2, 0, 4]
