"""The masking-modes section's verdicts (experiments/masking_modes.py) on hand-made results: each comparison paired
by init, one Holm family over the section, TOST within the declared margin, and the 2-SE screen's changes."""

from __future__ import annotations

import math

import pytest

from experiments import masking_modes
from experiments.common import Context
from lotterysearch.stats import mean_std


def _acc(values: list[float]) -> dict:
    return {**mean_std(values), "values": values}


def _mode(test: list[float], deployed: list[float] | None = None) -> dict:
    zero = mean_std([0.0] * len(test))
    curve = {"step": [1], "mean": [0.3], "std": [0.0]}
    return {"test": _acc(test), "deployed": _acc(deployed or test), "seconds": zero, "pruned_moved": zero,
            "curve": curve}  # fmt: skip


def _results(margin: bool) -> dict:
    forward_a, forward_b = [0.40, 0.42, 0.44], [0.30, 0.31, 0.32]
    densities = [
        # density 0.1: gradient-only is 1 point above forward in every init; deployed sparse it loses 8, 6, 6
        {"density": 0.1, "modes": {"forward": _mode(forward_a), "gradient": _mode([0.41, 0.43, 0.45], [0.33, 0.37, 0.39]),
                                   "straight_through": _mode(forward_a)}},
        # density 0.03: gradient-only equals forward; deployed sparse it loses 5, 2, 8
        {"density": 0.03, "modes": {"forward": _mode(forward_b), "gradient": _mode(forward_b, [0.25, 0.29, 0.24]),
                                    "straight_through": _mode(forward_b)}},
    ]  # fmt: skip
    settings = {"seeds": [0, 1, 2], "pruner": "synflow", **({"equivalence_margin": 0.5} if margin else {})}
    model = {
        "model": "mlp:4-4-2",
        "dataset": "mnist1d",
        "training": {"steps": 5, "optimizer": "adam", "lr": 0.01, "batch_size": 8},
        "dense": {"test": mean_std([0.5, 0.5, 0.5]), "curve": {"step": [1], "mean": [0.5], "std": [0.0]}},
        "densities": densities,
    }
    return {"settings": settings, "models": [model], "settings_name": "small"}


def _p2(t: float) -> float:
    """Two-sided p of Student's t with 2 degrees of freedom, in closed form."""
    return 1 - abs(t) / math.sqrt(2 + t**2)


def test_the_sections_comparisons_are_one_holm_family_in_points() -> None:
    res = _results(margin=True)
    assert masking_modes.margin(res) == (0.5, True)
    assert masking_modes.margin(_results(margin=False)) == (
        masking_modes.SETTINGS["small"].equivalence_margin,
        False,
    )
    decided = masking_modes.verdicts(res)
    assert len(decided) == 6 and {v.family_size for v in decided.values()} == {12}
    key = ("mlp:4-4-2", 0.1, "deployed")
    a = decided[key]  # differences −8, −6, −6 points: mean −20/3, std 2/√3, SE 2/3, t = −10
    p_a = _p2(-10.0)
    assert (
        a.difference.df == 2
        and a.difference.statistic == pytest.approx(-10.0)
        and a.difference.p == pytest.approx(p_a)
    )
    b = decided[("mlp:4-4-2", 0.03, "deployed")]  # −5, −2, −8: mean −5, std 3, SE √3
    p_b = _p2(-5 / math.sqrt(3))
    assert b.difference.p == pytest.approx(p_b)
    # Holm over 12 tests: four are p = 0 (a constant +1 point difference, and the TOST of three comparisons whose
    # differences are all 0), so p_a is the fifth smallest (× 8) and p_b the sixth (× 7)
    assert a.p_holm == pytest.approx(8 * p_a) and b.p_holm == pytest.approx(7 * p_b)
    assert p_a < 0.05 < 8 * p_a and a.kind == b.kind == "inconclusive"
    assert decided[("mlp:4-4-2", 0.1, "gradient")].kind == "better"  # +1 point in every init: p = 0
    assert decided[("mlp:4-4-2", 0.03, "gradient")].kind == "equivalent"
    assert decided[("mlp:4-4-2", 0.1, "straight_through")].kind == "equivalent"
    assert a.interval() == "-6.67 [-9.54, -3.80]"  # ± t(0.975, 2) · 2/3
    # the earlier screen (Welch, unpaired, 2 SE) called both deployed networks worse
    entry = res["models"][0]["densities"]
    assert [masking_modes.screen(d, "deployed") for d in entry] == ["worse", "worse"]
    assert masking_modes.screen(entry[0], "gradient") is None  # the report gave no verdict there


def test_the_section_renders_the_verdicts_and_what_changed(tmp_path) -> None:
    rendered = masking_modes.render(_results(margin=False), Context("small", tmp_path, ""))
    assert "after these runs, for this re-rendering" in rendered.body  # the saved run predates the margin
    assert "| `mlp:4-4-2` | 0.1 | straight-through − forward | +0.00 [+0.00, +0.00] | all 3 differences 0 | " \
        "equivalent within ±0.50 |" in rendered.body  # fmt: skip
    assert "inconclusive (was worse by the 2-SE screen)" in rendered.body
    assert "shown worse in 0 of 2 settings" in rendered.answer
    assert (
        "Changed from the 2-SE screen: the gradient-only network deployed sparse against itself as trained was "
        "worse at density 0.1 and density 0.03 (now inconclusive)." in rendered.answer
    )
    assert "identical to forward masking in every run of all 2 settings" in rendered.answer
