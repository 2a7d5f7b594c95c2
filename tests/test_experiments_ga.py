"""The GA experiment's helpers (experiments/ga.py) on hand-made cases: equal-compute accounting, A(d), the
hypervolume read at a budget, the earlier 2-SE screen, the section's tested verdicts (one Holm family, paired
by GA seed) and its headline, and a method's front as ``pareto.front`` of its candidates.
No Ray. (IMP's tickets from one trajectory, which the experiment uses: tests/test_pruning.py.)"""

from __future__ import annotations

import math

import pytest

from experiments.ga import (
    SETTINGS,
    Candidate,
    accuracy_at_density,
    affordable,
    best_at_density,
    compared,
    headline,
    hypervolume_curve,
    margin,
    mean_best_accuracy,
    paired,
    screen,
    spread_order,
    step_value,
    verdict,
    verdicts,
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


def test_the_earlier_2_se_screen() -> None:
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
        "own_gain": [11.0, 9.0, math.nan],
        "own": ["better", "inconclusive", "no data"],
        "ticket_gap": [-8.0, 0.5, math.nan],
        "imp": imp,
        "synflow": synflow,
        "random": ["better"] * 3,
        "align": align,
    }


def test_headline_follows_the_tested_verdicts() -> None:
    same, eq = ["inconclusive"] * 6, ["inconclusive"] * 3
    no = headline([_verdicts(["worse", "inconclusive", "worse"], ["better", *eq[:2]], eq, same)], 68, 3, 0.5)
    assert no.startswith("**No, not at equal training compute.** The lottery ticket, IMP's mask trained from")
    assert "at 2 of 3 fixed densities" in no
    assert "the GA's masks are better at 1, inconclusive at 2 of 3 densities against IMP's masks" in no
    assert (
        "IMP's masks lose 9.00 to 11.00 points of test accuracy retrained from fresh inits (shown at 1 of 3"
        in no
    )
    assert "at equal compute, evolving masks is not shown to beat scoring more SynFlow masks" in no
    assert "Aligning hidden neurons before crossover is not shown to matter or not: 6 of 6 comparisons" in no
    assert "Holm's correction over the section's 68 tests" in no
    open_ = headline([_verdicts(eq, eq, eq, same)], 68, 3, 0.5)
    assert open_.startswith(
        "**Not shown with 3 GA seeds.** The GA's best mask, trained from the init the GA "
    )
    assert "by -8.00 to +0.50 points at the fixed densities" in open_
    partly = headline([_verdicts(["equivalent"] * 3, ["worse", *eq[:2]], eq, same)], 68, 3, 0.5)
    assert partly.startswith("**Partly.**")
    yes = headline(
        [_verdicts(["equivalent"] * 3, eq, ["better", *eq[:2]], ["better", *same[:5]])], 68, 3, 0.5
    )
    assert yes.startswith("**Yes, at these settings.**")
    assert "the aligned GA is better at 1, inconclusive at 5 of 6 comparisons" in yes
    level = headline([_verdicts(["equivalent"] * 3, eq, eq, ["equivalent"] * 6)], 68, 3, 0.5)
    assert level.startswith("**As good as the ticket, but not beyond its seeds.**")
    assert "makes no difference beyond ±0.50 points in any of 6 comparisons" in level
    none = headline([_verdicts(["no data"] * 3, eq, eq, same)], 68, 3, 0.5)
    assert none.startswith("**Not measured at these settings.**")


def _method(d: float, fresh: float, selection: float, own: float | None = None) -> dict:
    """One method of one replicate, as the experiment saves it, with its chosen mask at density ≤ d."""
    pick = {"density": d, "val": selection, "test": [fresh, fresh], "test_selection_init": selection}
    if own is not None:
        pick |= {"test_own_init": own, "test_own_init_other_order": own}
    curve = {"steps": [10], "hv": [0.5]}
    return {"picks": {f"{d:g}": pick}, "test_hv": 0.4, "hv": 0.5, "steps": 10, "curve": curve}


def test_the_sections_comparisons_are_one_holm_family_paired_by_ga_seed() -> None:
    """Three GA seeds (the replicate), one density. Every method scores X = 0.40, 0.41, 0.42 by GA seed (fresh
    inits and selection init alike), IMP's tickets from their own init X + 7, 8, 9 points, and random search has
    no mask that sparse. So the GA trails the ticket by 7, 8, 9 points and IMP's own init gains as much over fresh
    inits: t = ±8√3 with 2 degrees of freedom, two-sided p = 1 − |t|/√(2 + t²); every other comparison is 0 in
    every GA seed (difference p = 1, TOST p = 0)."""
    x, gap = [0.40, 0.41, 0.42], [0.07, 0.08, 0.09]
    reps = []
    for r, (a, g) in enumerate(zip(x, gap, strict=True)):
        methods = {m: _method(0.1, a, a) for m in ("ga_aligned", "ga_unaligned", "synflow")}
        methods["random"] = {**_method(0.1, a, a), "picks": {"0.1": None}}
        methods["imp"] = _method(0.1, a, a, own=a + g)
        reps.append({"replicate": r, "methods": methods})
    res = {"model": "mlp:4-4-2", "replicates": reps}
    results = {"settings": {"densities": [0.1], "equivalence_margin": 0.5}, "models": [res]}
    assert margin(results) == (0.5, True)
    assert margin({"settings": {"densities": [0.1]}}) == (SETTINGS["small"].equivalence_margin, False)
    decided = verdicts(results)
    assert len(decided) == 16  # 4 + 4 + 1 + 4 + 1 + 2 comparisons (see ``compared``)
    ticket, own = decided[("mlp:4-4-2", "ticket", 0.1)], decided[("mlp:4-4-2", "imp_gain", 0.1)]
    t = 8 * math.sqrt(3)
    p = 1 - t / math.sqrt(2 + t**2)
    assert ticket.difference.differences == pytest.approx((-7.0, -8.0, -9.0)) and ticket.difference.df == 2
    assert ticket.difference.statistic == pytest.approx(-t) and ticket.difference.p == pytest.approx(p)
    # random's comparison has no GA seed with a mask: no data, no test; 15 comparisons, 30 tests, 13 of them
    # TOSTs with p = 0; the two p's come next, × 17 and × 16, then made monotone: both 17 p
    assert decided[("mlp:4-4-2", "topo", "random", 0.1)].kind == "no data"
    assert (
        ticket.family_size == 30
        and ticket.p_holm == pytest.approx(17 * p)
        and own.p_holm == pytest.approx(17 * p)
    )
    assert p < 0.05 < 17 * p and ticket.kind == own.kind == "inconclusive"
    assert decided[("mlp:4-4-2", "topo", "synflow", 0.1)].kind == "equivalent"
    assert decided[("mlp:4-4-2", "align_equal")].kind == "equivalent"
    assert ticket.interval() == "-8.00 [-10.48, -5.52]"  # ± t(0.975, 2)/√3
    # what the earlier screen said: −0.08 beyond 2 SE, "worse"; it gave IMP's own-init gain as a number only
    pairs = compared(res, [0.1])
    assert screen(pairs[("mlp:4-4-2", "ticket", 0.1)], "ticket") == "worse"
    assert screen(pairs[("mlp:4-4-2", "imp_gain", 0.1)], "imp_gain") is None


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
