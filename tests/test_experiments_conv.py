"""The convnet section of the report, end to end on tiny settings (in process): collapse sweeps, SynFlow
stability and an IMP run with confirmed tickets on an 8x8 convnet, rendered and composed into the report."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from experiments import conv, run_all
from experiments.common import Context, Rendered
from lotterysearch.settings import parse_imp_config

TINY_IMP = """
kind = "imp"
name = "conv-test"
dataset = "digits"
model = "conv:8x8x1:4-M:6-10"
evaluator = "local"
[imp]
init_seeds = [0, 1]
rounds = 4
[training]
steps = 40
lr = 0.01
batch_size = 32
eval_every = 20
"""
TINY = conv.ConvSettings(
    cases=(conv.ConvCase("tiny conv / digits", "conv:8x8x1:4-M:6-10", "digits", (0,), 0.5, (0, 1, 2), (4.0, 40.0), (True,)),),
    imp_config="tiny",
    confirm_rounds=(2, 4),
)  # fmt: skip


def test_the_section_measures_renders_and_answers_three_questions(tmp_path: Path, one_thread: None) -> None:
    ctx = Context("small", tmp_path, "", progress=lambda s: None)
    res = conv.measure(TINY, parse_imp_config(TINY_IMP, "<tiny imp>"), ctx)
    (coll,) = res["collapse"]
    assert coll["layer_sizes"] == {"conv1": 36, "fc1": 384, "fc2": 60} and coll["rho_max"] == 160.0
    assert coll["grid"][-1] == pytest.approx(2.2041199826559246)  # log10 160, after 0, 0.5, ..., 2
    assert [(w["pruner"], w["bias"]) for w in coll["sweeps"]] == [(p, True) for p in TINY.pruners]
    for w in coll["sweeps"]:
        assert len(w["collapsed"]) == len(coll["grid"]) and w["collapsed"][0] is False  # ρ = 1 keeps all
        assert 1.0 <= w["critical"] <= 160.0 * (1 + 1e-12)  # 10^log10(ρ_max) up to rounding
    (st,) = res["stability"]
    assert [r["compression"] for r in st["rows"]] == [4.0, 40.0]
    for r in st["rows"]:
        assert r["density"]["mean"] == pytest.approx(round(480 / r["compression"]) / 480)
        assert 1 <= r["classes"] <= 3 and r["aligned_jaccard"]["mean"] >= r["jaccard"]["mean"] - 1e-9
    tk = res["tickets"]
    assert conv.training_runs(tk) == 2 * 5 + 4  # two trajectories' rounds 0-4, a reinit of 4 tickets
    assert sorted(tk["points"]["reinit"]) == ["2", "4"] and len(tk["points"]["ticket"]) == 5
    densities = [tk["points"]["ticket"][str(k)][0]["density"] for k in range(5)]
    assert densities[0] == 1.0 and densities == sorted(densities, reverse=True)
    for p in (p for m in tk["points"].values() for ps in m.values() for p in ps):
        assert p["es_step"] in (20, 40) and 0 <= p["es_test"] <= 1

    rendered = conv.render(res, ctx)
    assert rendered.answer.startswith("**On convolutional networks**: tiny conv / digits (ρ_max = 10^2.20): ")
    assert set(rendered.also) == {1, 5}
    assert rendered.also[5].startswith(
        "**On the 1-D CNN / MNIST-1D** (2 inits, 40 iterations per round; paired "
    )
    assert res["settings"]["equivalence_margin"] == TINY.equivalence_margin  # stored: declared before the run
    tables = [line for line in rendered.body.splitlines() if line.startswith("| ")]
    # collapse, stability, tickets, then the tickets' verdicts (4 sparse rounds against dense, 2 against reinit)
    assert len(tables) == (1 + 4) + (1 + 2) + (1 + 5) + (1 + 4 + 2)
    for name in ("conv_collapse.png", "conv_tickets.png"):
        assert (tmp_path / "figures" / name).stat().st_size > 10_000

    others = {s.key: Rendered(body=f"body {s.key}", answer=f"answer {s.key}") for s in run_all.SECTIONS}
    report = run_all.compose({**others, "conv": rendered}, {}, "header")
    start = report.index("## Answers")
    answers = report[start : report.index("\n## ", start)]
    q1, q5 = answers.index("### 1. "), answers.index("### 5. ")
    assert answers.index("answer stability") < answers.index(rendered.also[1]) < answers.index("### 2. ")
    assert q5 < answers.index("answer lth") < answers.index(rendered.also[5])
    assert answers.index("answer collapse") < answers.index(rendered.answer) < q5 and q1 < q5
    assert "## 4b. Convolutional networks" in report


def _points(values: list[float], density: float) -> list[dict]:
    return [{"seed": s, "density": density, "es_step": 40, "es_test": v} for s, v in enumerate(values)]


def test_the_tickets_verdicts_are_one_holm_family_paired_by_init() -> None:
    """Hand-made tickets, 3 inits: round 1 trails the dense network by 1, 2, 3 points; round 2 by 10 in every
    init, and beats its reinit by 10, 9, 8. With 2 degrees of freedom the two-sided p is 1 − |t|/√(2 + t²)."""
    tk = {
        "seeds": [0, 1, 2],
        "rounds": [0, 1, 2],
        "confirm_rounds": [2],
        "training": {"steps": 40},
        "points": {
            "ticket": {"0": _points([0.80, 0.82, 0.84], 1.0), "1": _points([0.79, 0.80, 0.81], 0.8),
                       "2": _points([0.70, 0.72, 0.74], 0.64)},
            "reinit": {"2": _points([0.60, 0.63, 0.66], 0.64)},
        },
    }  # fmt: skip
    results = {"settings": {"equivalence_margin": 0.5}, "tickets": tk}
    decided = conv.verdicts(results)
    p1, p2 = (1 - t / math.sqrt(2 + t**2) for t in (2 * math.sqrt(3), 9 * math.sqrt(3)))
    one, two, reinit = decided[("dense", 1)], decided[("dense", 2)], decided[("reinit", 2)]
    assert one.difference.df == 2 and one.difference.statistic == pytest.approx(-2 * math.sqrt(3))
    assert reinit.difference.statistic == pytest.approx(9 * math.sqrt(3))
    # six tests: round 2 against dense has p = 0 (−10 in every init), then the reinit test (× 5), then round 1 (× 4)
    assert (
        reinit.family_size == 6
        and reinit.p_holm == pytest.approx(5 * p2)
        and one.p_holm == pytest.approx(4 * p1)
    )
    assert (one.kind, two.kind, reinit.kind) == ("inconclusive", "worse", "better")
    assert one.interval() == "-2.00 [-4.48, +0.48]"
    # the earlier screen (Welch, unpaired): round 1 within 2 SE of dense, which the report read as level
    assert conv.screen(tk, "dense", 1) == "indistinguishable" and conv.screen(tk, "reinit", 2) == "better"
    answer = conv.tickets_answer(results)
    assert "against their reinit controls the tickets are better at 64.0% (in points: +9.00 [" in answer
    assert "they are inconclusive at 80.0%, worse at 64.0%" in answer and "shown here at no density" in answer
    assert (
        "the ticket against the dense network (round 0) was indistinguishable at 80.0% (now inconclusive)"
        in answer
    )
