"""Mean ± sample std over seeds: the one summary every study and report of this package prints.

Std is the sample standard deviation (ddof = 1), 0 for a single value; an empty sample has NaN mean and
std, and prints as ``–``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np


def mean_std(values: Iterable[float]) -> dict[str, float]:
    """``{"mean", "std", "n"}`` with the sample std (ddof = 1), 0 for one value, NaN for none."""
    v = np.asarray(list(values), dtype=np.float64)
    if v.size == 0:
        return {"mean": math.nan, "std": math.nan, "n": 0}
    return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if v.size > 1 else 0.0, "n": int(v.size)}


def pm(stat: Mapping[str, float] | None, digits: int = 3) -> str:
    """``mean ± std`` of a ``mean_std`` summary, or ``–`` when it is missing or empty."""
    if not stat or stat.get("n", 1) == 0 or stat.get("mean") is None or math.isnan(stat["mean"]):
        return "–"
    return f"{stat['mean']:.{digits}f} ± {stat['std']:.{digits}f}"


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A GitHub markdown table; cells are written with ``str``."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
