"""Verdicts a referee accepts: paired tests with their degrees of freedom, Holm's correction over the
comparisons of one family, equivalence within a margin declared before the run, and 95% intervals.

Every comparison is paired (the two methods share their replicates, e.g. the init θ₀) and is decided in a
``Family``: the difference test of each comparison (paired t, or Wilcoxon's signed-rank test), and the two
one-sided tests of equivalence (TOST, Schuirmann 1987) of each comparison that has a margin, are corrected
together with Holm's step-down (Holm 1979), so that the chance of *any* false "better", "worse" or
"equivalent" in the family is at most α. A comparison is

* **better** / **worse** when its difference test rejects "no difference" after the correction;
* **equivalent within ±m** when instead its TOST rejects "the difference lies beyond ±m";
* **inconclusive** otherwise: the data do not tell (too few replicates, or too much noise).

Intervals are two-sided (1 − α) t intervals of the mean paired difference, uncorrected, in the units given
(the reports pass accuracy in percentage points, printed with two decimals).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from lotterysearch.errors import ConfigError

ALPHA = 0.05
TESTS = ("t", "wilcoxon")


@dataclass(frozen=True)
class PairedDifference:
    """The paired differences a_r − b_r and the test of "no difference" on them."""

    differences: tuple[float, ...]
    test: str  # "t" or "wilcoxon"
    confidence: float = 1 - ALPHA

    @property
    def n(self) -> int:
        return len(self.differences)

    @property
    def mean(self) -> float:
        return float(np.mean(self.differences)) if self.n else math.nan

    @property
    def std(self) -> float:
        """Sample std (ddof = 1) of the differences; NaN below two."""
        return float(np.std(self.differences, ddof=1)) if self.n > 1 else math.nan

    @property
    def df(self) -> int:
        """The paired t-test's degrees of freedom, n − 1."""
        return self.n - 1

    @property
    def se(self) -> float:
        return self.std / math.sqrt(self.n) if self.n > 1 else math.nan

    @property
    def statistic(self) -> float:
        """t = mean / SE for the t-test; W, the smaller signed-rank sum, for Wilcoxon."""
        if self.n < 2:
            return math.nan
        if self.test == "wilcoxon":
            return float(stats.wilcoxon(self.differences).statistic) if any(self.differences) else math.nan
        if self.std == 0:
            return math.copysign(math.inf, self.mean) if self.mean else math.nan
        return float(stats.ttest_1samp(self.differences, 0.0).statistic)

    @property
    def p(self) -> float:
        """Two-sided p of "no difference" (uncorrected); NaN with fewer than two replicates."""
        d = self.differences
        if self.n < 2:
            return math.nan
        if not any(d):
            return 1.0
        if self.test == "wilcoxon":
            return float(stats.wilcoxon(d).pvalue)
        if self.std == 0:  # every replicate differs by the same amount: scipy would warn and divide by 0
            return 0.0
        return float(stats.ttest_1samp(d, 0.0).pvalue)

    @property
    def ci(self) -> tuple[float, float]:
        """The two-sided ``confidence`` t interval of the mean difference (for either test)."""
        if self.n < 2:
            return (math.nan, math.nan)
        if self.std == 0:
            return (self.mean, self.mean)
        ci = stats.ttest_1samp(self.differences, 0.0).confidence_interval(self.confidence)
        return (float(ci.low), float(ci.high))

    def equivalence_p(self, margin: float) -> float:
        """TOST's p (Schuirmann 1987): the larger of the one-sided p's of "difference ≤ −margin" and
        "difference ≥ +margin". Below α exactly when the (1 − 2α) interval lies inside ±margin (t-test)."""
        if margin <= 0:
            raise ConfigError(f"an equivalence margin must be positive, got {margin:g}")
        d = np.asarray(self.differences, dtype=np.float64)
        if self.n < 2:
            return math.nan
        if self.test == "wilcoxon":
            lo = _wilcoxon_one_sided(d + margin, "greater")
            hi = _wilcoxon_one_sided(d - margin, "less")
        elif self.std == 0:
            return 0.0 if abs(self.mean) < margin else 1.0
        else:
            lo = float(stats.ttest_1samp(d, -margin, alternative="greater").pvalue)
            hi = float(stats.ttest_1samp(d, margin, alternative="less").pvalue)
        return max(lo, hi)


def mean_interval(values: Sequence[float], confidence: float = 1 - ALPHA) -> tuple[float, float, float]:
    """The mean of independent replicates (e.g. one number per init) and its two-sided t interval: the
    interval of a paired difference against zero. NaN bounds below two replicates."""
    d = PairedDifference(tuple(float(v) for v in values), "t", confidence)
    return (d.mean, *d.ci)


def _wilcoxon_one_sided(d: np.ndarray, alternative: str) -> float:
    if not d.any():
        return 1.0
    return float(stats.wilcoxon(d, alternative=alternative).pvalue)


def pairs(a: Mapping[Hashable, float] | Sequence[float], b: Mapping[Hashable, float] | Sequence[float]):
    """The replicates both have, as (a_r, b_r): by shared key for mappings (e.g. by θ₀), by position for
    sequences."""
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return [(a[k], b[k]) for k in a if k in b]
    if isinstance(a, Mapping) or isinstance(b, Mapping):
        raise TypeError("pair two mappings (by key) or two sequences (by position), not one of each")
    if len(a) != len(b):
        raise ValueError(f"paired samples differ in length: {len(a)} and {len(b)}")
    return list(zip(a, b, strict=True))


def paired_difference(
    a: Mapping[Hashable, float] | Sequence[float],
    b: Mapping[Hashable, float] | Sequence[float],
    test: str = "t",
    confidence: float = 1 - ALPHA,
) -> PairedDifference:
    """a − b replicate by replicate, with ``test`` ("t": Student's paired t; "wilcoxon": signed-rank)."""
    if test not in TESTS:
        raise ConfigError(f"unknown paired test {test!r} (known: {', '.join(TESTS)})")
    return PairedDifference(tuple(float(x) - float(y) for x, y in pairs(a, b)), test, confidence)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (Holm 1979), in the order given: the k-th smallest of m is
    multiplied by m − k + 1, then made non-decreasing in that order and capped at 1. Rejecting where the
    adjusted p < α keeps the family-wise error at most α for any dependence between the tests."""
    p = np.asarray(p_values, dtype=np.float64)
    if np.isnan(p).any():
        raise ValueError("Holm's correction needs a p-value for every test (leave untested ones out)")
    m = p.size
    order = np.argsort(p, kind="stable")
    stepped = np.maximum.accumulate(np.minimum(1.0, (m - np.arange(m)) * p[order]))
    out = np.empty(m)
    out[order] = stepped
    return out.tolist()


@dataclass(frozen=True)
class Verdict:
    """One comparison's outcome in its family: the paired difference, the Holm-adjusted p's, the kind."""

    difference: PairedDifference
    margin: float | None  # the declared equivalence margin, in the difference's units
    p_holm: float  # the difference test's p after the family's correction (NaN: not tested)
    p_equivalence_holm: float | None  # TOST's p after the correction (None: no margin)
    family_size: int  # how many tests the correction covered
    alpha: float = ALPHA

    @property
    def kind(self) -> str:
        """'better', 'worse', 'equivalent', 'inconclusive' or 'no data'."""
        if self.difference.n == 0:
            return "no data"
        if self.p_holm < self.alpha:
            return "better" if self.difference.mean > 0 else "worse"
        if self.equivalent:
            return "equivalent"
        return "inconclusive"

    @property
    def equivalent(self) -> bool:
        """Whether TOST shows the difference inside ±margin (also alongside a significant difference)."""
        return self.p_equivalence_holm is not None and self.p_equivalence_holm < self.alpha

    def __str__(self) -> str:
        if self.kind == "equivalent":
            return f"equivalent within ±{self.margin:.2f}"
        if self.kind in ("better", "worse") and self.equivalent:
            return f"{self.kind}, by less than ±{self.margin:.2f}"
        return self.kind

    def interval(self, digits: int = 2) -> str:
        """``+0.13 [−0.05, +0.31]``: the mean difference and its interval; ``–`` without two replicates."""
        d = self.difference
        if d.n == 0:
            return "–"
        if d.n < 2:
            return f"{d.mean:+.{digits}f} (n = 1)"
        lo, hi = d.ci
        return f"{d.mean:+.{digits}f} [{lo:+.{digits}f}, {hi:+.{digits}f}]"

    def test_text(self) -> str:
        """``t(2) = 3.00, p = 0.095, Holm p = 1`` (Wilcoxon: ``W = 0``)."""
        d = self.difference
        if d.n < 2:
            return "no test (n < 2)"
        s = d.statistic
        head = f"W = {s:g}" if d.test == "wilcoxon" else f"t({d.df}) = {s:.2f}"
        return f"{head}, p = {_p(d.p)}, Holm p = {_p(self.p_holm)}"


def _p(p: float) -> str:
    if math.isnan(p):
        return "–"
    """Three significant digits, so that a p just below α never prints as α."""
    return "1" if p >= 0.9995 else f"{p:.3g}" if p >= 0.001 else f"{p:.0e}"


class Family:
    """The comparisons one report section decides together: add them all, then ``decide`` once, so that
    Holm's correction covers every test behind the section's verdicts."""

    def __init__(self, test: str = "t", alpha: float = ALPHA):
        if test not in TESTS:
            raise ConfigError(f"unknown paired test {test!r} (known: {', '.join(TESTS)})")
        if not 0 < alpha < 1:
            raise ConfigError(f"alpha must lie in (0, 1), got {alpha:g}")
        self.test, self.alpha = test, alpha
        self._comparisons: dict[Hashable, tuple[PairedDifference, float | None]] = {}

    def compare(
        self,
        key: Hashable,
        a: Mapping[Hashable, float] | Sequence[float],
        b: Mapping[Hashable, float] | Sequence[float],
        margin: float | None = None,
    ) -> None:
        """Add the comparison a − b (paired), with an equivalence ``margin`` when one was declared."""
        if key in self._comparisons:
            raise ValueError(f"comparison {key!r} is already in the family")
        if margin is not None and margin <= 0:
            raise ConfigError(f"an equivalence margin must be positive, got {margin:g}")
        self._comparisons[key] = (paired_difference(a, b, self.test, 1 - self.alpha), margin)

    def __len__(self) -> int:
        return len(self._comparisons)

    def decide(self) -> dict[Hashable, Verdict]:
        """Every comparison's verdict, with Holm's correction over all the family's tests."""
        tests: list[tuple[Hashable, str, float]] = []
        for key, (diff, margin) in self._comparisons.items():
            if diff.n >= 2:
                tests.append((key, "difference", diff.p))
                if margin is not None:
                    tests.append((key, "equivalence", diff.equivalence_p(margin)))
        adjusted = dict(zip(((k, w) for k, w, _ in tests), holm([p for *_, p in tests]), strict=True))
        return {
            key: Verdict(
                difference=diff,
                margin=margin,
                p_holm=adjusted.get((key, "difference"), math.nan),
                p_equivalence_holm=None if margin is None else adjusted.get((key, "equivalence"), math.nan),
                family_size=len(tests),
                alpha=self.alpha,
            )
            for key, (diff, margin) in self._comparisons.items()
        }
