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
