"""Mean ± sample std over seeds, its text and markdown tables: the one summary the study and the
experiments print."""

import math

import pytest

from lotterysearch.stats import markdown_table, mean_std, pm


def test_mean_std_is_the_sample_std() -> None:
    assert mean_std([3.0]) == {"mean": 3.0, "std": 0.0, "n": 1}
    assert mean_std([1.0, 2.0, 3.0]) == {"mean": 2.0, "std": 1.0, "n": 3}  # ddof = 1, not 0.816
    assert mean_std(iter([0.5, 0.7])) == {
        "mean": pytest.approx(0.6),
        "std": pytest.approx(0.1414213562),
        "n": 2,
    }
    empty = mean_std([])
    assert empty["n"] == 0 and math.isnan(empty["mean"]) and math.isnan(empty["std"])


def test_pm_prints_mean_and_std_or_a_dash() -> None:
    assert pm(mean_std([1.0, 2.0, 3.0])) == "2.000 ± 1.000"
    assert pm({"mean": 0.123456, "std": 0.01, "n": 4}, 4) == "0.1235 ± 0.0100"
    assert pm(mean_std([])) == "–"
    assert pm(None) == "–"
    assert pm({"mean": None, "std": None, "n": 3}) == "–"


def test_markdown_table() -> None:
    assert (
        markdown_table(["a", "ρ"], [(1, "x"), (2.5, None)])
        == "| a | ρ |\n|---|---|\n| 1 | x |\n| 2.5 | None |"
    )
    assert markdown_table(["only"], []) == "| only |\n|---|"
