"""The ticket-of-θ₀ section: overlap and paired differences by hand, then end to end on the quick config."""

from __future__ import annotations

import math

import pytest
import torch

from experiments import ticket_match
from experiments.common import ROOT, Context
from lotterysearch.core.masks import Mask


def test_overlap_is_jaccard_against_its_hypergeometric_chance() -> None:
    a = Mask({"fc1": torch.tensor([[1, 1, 0, 0]], dtype=torch.bool)})
    b = Mask({"fc1": torch.tensor([[0, 1, 1, 0]], dtype=torch.bool)})
    o = ticket_match.overlap(a, b)
    # |A∩B| = 1, |A∪B| = 3; two independent 2-of-4 masks meet in 0, 1, 2 weights with probability 1/6, 4/6, 1/6
    chance = (1 / 6) * 0 + (4 / 6) * (1 / 3) + (1 / 6) * 1
    assert o["jaccard"] == pytest.approx(1 / 3)
    assert o["chance"] == pytest.approx(chance)
    assert o["kappa"] == pytest.approx((1 / 3 - chance) / (1 - chance))


def test_accuracy_differences_are_paired_by_init() -> None:
    res = {"rows": [{"at": {"10": {"test": {"search": s, "imp": i}}}} for s, i in [(0.5, 0.6), (0.7, 0.75)]]}
    d = ticket_match.paired(res, 10, "search", "imp")
    assert d["mean"] == pytest.approx(-0.075)
    assert d["se"] == pytest.approx(math.sqrt(((0.025) ** 2 * 2) / 1) / math.sqrt(2))


def test_the_sections_comparisons_are_one_holm_family_in_points_with_tost() -> None:
    """Three θ₀ at one density: the search trails IMP by 1, 2, 3 points, the magnitude mutation equals IMP.
    With 2 degrees of freedom the t distribution's two-sided p is 1 − |t|/√(2 + t²)."""
    test = [(0.30, 0.31, 0.31), (0.40, 0.42, 0.42), (0.50, 0.53, 0.53)]  # search, imp, magnitude per θ₀
    overlap = {"jaccard": 0.1, "chance": 0.1, "kappa": 0.0}
    res = {
        "compressions": [10],
        "inits": [0, 1, 2],
        "equivalence_margin": 0.5,
        "rows": [
            {
                "theta0": t,
                "search_steps": 10,
                "magnitude_steps": 10,
                "imp_steps": 5,
                "at": {
                    "10": {
                        "test": {"search": s, "imp": i, "magnitude": m},
                        "with_imp": {"search": overlap, "synflow": overlap},
                    }
                },
            }
            for t, (s, i, m) in enumerate(test)
        ],
    }
    assert ticket_match.margin(res) == (0.5, True)  # stored with the run: declared before it
    decided = ticket_match.verdicts(res)
    v = decided[("search", "imp", 10)]
    t = -2 * math.sqrt(3)  # mean −2 points, std 1, n 3
    p = 1 - abs(t) / math.sqrt(2 + t**2)
    assert v.difference.n == 3 and v.difference.df == 2
    assert v.difference.statistic == pytest.approx(t) and v.difference.p == pytest.approx(p)
    # six tests: the difference and TOST of each comparison; magnitude − IMP is 0 in every θ₀, so its TOST p is
    # 0 and its difference p 1; the two |t| = 2√3 tests come next, multiplied by 5 and 4, then made monotone
    assert v.family_size == 6 and v.p_holm == pytest.approx(5 * p)
    assert decided[("magnitude", "search", 10)].p_holm == pytest.approx(5 * p)
    assert v.kind == "inconclusive" and v.interval() == "-2.00 [-4.48, +0.48]"  # ± t(0.975, 2)/√3
    assert ticket_match.screen(res, 10, "search", "imp") == "worse"  # −0.02 beyond 2 SE (0.0058)
    assert decided[("magnitude", "imp", 10)].kind == "equivalent"
    answer = ticket_match.ticket_answer(res)
    assert "it differs from IMP's ticket by -2.00 [-4.48, +0.48] at 1/10: inconclusive at 1/10" in answer
    assert "equivalent within ±0.50 at 1/10" in answer
    assert "the search against IMP's ticket was worse at 1/10 (now inconclusive)" in answer
    assert ticket_match.margin({k: v for k, v in res.items() if k != "equivalence_margin"}) == (0.5, False)


def test_the_section_runs_the_quick_search_in_ticket_mode_against_imp_and_renders(tmp_path) -> None:
    s = ticket_match.TicketSettings(
        inits=(3,),
        compressions=(10,),
        generations=1,
        evaluator="local",
        config=ROOT / "configs" / "quick.toml",
    )
    res = ticket_match.measure(s, Context("small", tmp_path, "", progress=lambda line: None))
    (row,) = res["rows"]
    at = row["at"]["10"]
    assert row["theta0"] == 3 and row["search_steps"] > 0 and row["imp_steps"] % 115 == 0
    assert row["magnitude_steps"] > 0 and set(at["with_imp"]) == {"search", "magnitude", "synflow"}
    for variant in ("search", "magnitude"):
        assert at["density"][variant] <= 0.1 + 1e-4
    assert at["density"]["imp"] <= 0.1 + 1e-4
    assert at["density"]["synflow"] == pytest.approx(0.1, abs=1e-4)
    for o in (*at["with_imp"].values(), at["search_synflow"]):
        assert 0 <= o["jaccard"] <= 1 and 0 < o["chance"] < 1
        assert o["kappa"] == pytest.approx((o["jaccard"] - o["chance"]) / (1 - o["chance"]))
    assert all(0 < a <= 1 for a in at["test"].values())
    rendered = ticket_match.render(res, Context("small", tmp_path, ""))
    assert "| 1/10 | IMP's ticket | 1 |" in rendered.body
    assert rendered.answer.startswith("**")
    assert "| 1/10 | the same with the magnitude mutation only |" in rendered.body
    assert "With the magnitude (Lamarckian) mutation in place of the demo's mutations" in rendered.answer
    assert res["equivalence_margin"] == s.equivalence_margin  # stored with the run: declared before it
    # one θ₀: no test, so every verdict is inconclusive
    assert "| 1/10 | the search's best − IMP's ticket | " in rendered.body
    assert "no test (n < 2)" in rendered.body and "every verdict is inconclusive" in rendered.body
