"""What every section of ``experiments/REPORT.md`` shares: where files go, the section protocol, and the
comparison of two mean ± std summaries in sentences. The summaries, their ``mean ± std`` text and markdown
tables come from ``lotterysearch.stats``, as in the library's own reports.

A section is two functions: ``run(ctx) -> dict`` computes and returns JSON-able results (saved to
``experiments/results/<key>.json``), and ``render(results, ctx) -> Rendered`` turns saved results into
markdown: the section body and a short written answer to its question. Rendering reads only the saved
results, so ``python -m experiments.run_all --report-only`` rewrites REPORT.md with text and numbers that
agree.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scipy import stats

from lotterysearch.verdicts import Family, Verdict

ROOT = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Context:
    """Where a section writes, at which settings ("small" or "large"), and how it reports progress."""

    settings: str
    root: Path
    data_dir: str
    progress: Callable[[str], None] = print

    @property
    def figures(self) -> Path:
        return self.root / "figures"

    @property
    def results(self) -> Path:
        return self.root / "results"

    @property
    def workspace(self) -> Path:
        """Where a section keeps its runs' stores, so that a killed section resumes instead of restarting."""
        return self.root / "workspace"

    def figure_link(self, path: Path) -> str:
        """The path REPORT.md (in ``root``) uses for a figure."""
        return path.resolve().relative_to(self.root.resolve()).as_posix()


@dataclass(frozen=True)
class Rendered:
    body: str  # the section's markdown, without its title
    answer: str  # the short written answer to the section's question
    # answers to other questions the section's numbers bear on (question number → paragraph), placed
    # after the answers of the sections that ask them
    also: Mapping[int, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Section:
    key: str  # results/<key>.json
    title: str
    question: int
    run: Callable[[Context], dict[str, Any]]
    render: Callable[[Mapping[str, Any], Context], Rendered]


def results_path(ctx: Context, key: str, settings: str | None = None) -> Path:
    """``results/<key>.json`` at the small settings, ``results/<key>.large.json`` at the large: the two
    live side by side, so a section can show both."""
    settings = settings or ctx.settings
    return ctx.results / (f"{key}.json" if settings == "small" else f"{key}.{settings}.json")


def save_results(ctx: Context, key: str, results: Mapping[str, Any]) -> Path:
    ctx.results.mkdir(parents=True, exist_ok=True)
    path = results_path(ctx, key)
    path.write_text(json.dumps(results, indent=1) + "\n")
    return path


def load_results(ctx: Context, key: str, settings: str | None = None) -> dict[str, Any] | None:
    path = results_path(ctx, key, settings)
    return json.loads(path.read_text()) if path.is_file() else None


# ---- numbers to text (mean ± std itself: ``lotterysearch.stats``) -------------------------------------
def differs(a: Mapping[str, float], b: Mapping[str, float], z: float = 2.0) -> bool:
    """Whether two means differ by more than ``z`` standard errors of their difference (Welch's SE)."""
    se = math.sqrt(a["std"] ** 2 / max(a["n"], 1) + b["std"] ** 2 / max(b["n"], 1))
    return abs(a["mean"] - b["mean"]) > z * se if se > 0 else a["mean"] != b["mean"]


def difference(a: Mapping[str, float], b: Mapping[str, float]) -> str:
    """``a − b`` with its standard error, e.g. ``+0.012 ± 0.008 (SE)``."""
    se = math.sqrt(a["std"] ** 2 / max(a["n"], 1) + b["std"] ** 2 / max(b["n"], 1))
    return f"{a['mean'] - b['mean']:+.3f} ± {se:.3f} (SE)"


# ---- verdicts (the tests themselves: ``lotterysearch.verdicts``) ---------------------------------------
SCREEN = (
    "the 2-SE screen"  # how earlier versions of the report decided: a difference beyond 2 standard errors
)


def in_points(accuracies: Mapping[Any, float]) -> dict[Any, float]:
    """Accuracies (fractions) in percentage points, the unit of every interval and margin in the report."""
    return {k: 100 * float(v) for k, v in accuracies.items()}


def changed(v: Verdict, screen: str) -> bool:
    """Whether ``v`` says something other than the 2-SE screen's ``screen`` ('better', 'worse' or
    'indistinguishable', which the report read as level): 'equivalent' keeps a level reading, now shown by a
    test; 'inconclusive' withdraws whatever the screen claimed."""
    reads = {"better": "better", "worse": "worse", "equivalent": "indistinguishable", "no data": "no data"}
    return reads.get(v.kind) != screen


def verdict_cell(v: Verdict, screen: str) -> str:
    """The verdict, and what the 2-SE screen had said where that changed."""
    return f"{v} (was {screen} by {SCREEN})" if changed(v, screen) else str(v)


def method_text(
    verdicts: Mapping[Any, Verdict],
    margin: float,
    declared_before: bool,
    where: str,
    screen: str | None = "a paired difference beyond 2 standard errors",
    unit: str = "init",
) -> str:
    """How a section's verdicts were reached, in one paragraph: the test, its degrees of freedom, Holm's
    family, the equivalence margin and when it was declared, and what the replicates allow. ``unit`` is the
    replicate the differences are paired by (an init, a GA seed)."""
    tested = [v for v in verdicts.values() if v.difference.n >= 2]
    if not tested:
        return "No comparison has two replicates: every verdict is inconclusive."
    m, alpha = tested[0].family_size, tested[0].alpha
    ns = sorted({v.difference.n for v in tested})
    n = max(ns)
    first = float(stats.t.ppf(1 - alpha / (2 * m), n - 1))  # Holm's first step, two-sided
    when = (
        f"declared in {where} before the run and stored with its results"
        if declared_before
        else f"declared in {where} after these runs, for this re-rendering (a run stores it with its results)"
    )
    counts = {k: sum(v.kind == k for v in verdicts.values()) for k in ("better", "worse", "equivalent")}
    return (
        f"Verdicts: each difference is paired by {unit} (paired t-test, n − 1 degrees of freedom; n = "
        f"{', '.join(map(str, ns))} here), with Holm's correction over all {m} tests of the section (every "
        f"comparison's difference test and its equivalence test), family-wise α = {alpha:g}. *Better* or "
        f"*worse*: the difference test rejects no difference; *equivalent within ±{margin:.2f}*: instead two "
        f"one-sided tests (TOST) put the difference inside ±{margin:.2f} points, a margin {when}; "
        f"*inconclusive*: neither. Intervals are 95% t intervals of the mean paired difference, in points, "
        f"uncorrected. With {n} {unit}s ({n - 1} degrees of freedom) Holm's first step needs |t| > {first:.1f}, "
        f"and Wilcoxon's signed-rank test, the alternative without normality, cannot go below p = "
        f"{2 / 2**n:.2f} with {n} pairs at all. Here {counts['better']} comparisons are better, "
        f"{counts['worse']} worse and {counts['equivalent']} equivalent of {len(verdicts)}; the rest are "
        "inconclusive."
        + (
            f" A verdict that differs from what the report's earlier 2-SE screen ({screen}, no correction, no "
            "equivalence test) said is marked *was …*."
            if screen
            else ""
        )
    )


def decide(
    comparisons: Mapping[Hashable, tuple[Mapping[Any, float], Mapping[Any, float]]], margin: float
) -> dict[Hashable, Verdict]:
    """Every comparison a − b of a section, given as accuracies (fractions) by replicate, decided as one Holm
    family in points, each with the equivalence ``margin``. A replicate where either side has no number
    (NaN: e.g. no mask that sparse) is left out of that comparison."""
    family = Family()
    for key, (a, b) in comparisons.items():
        keep = [r for r in a if r in b and not (math.isnan(a[r]) or math.isnan(b[r]))]
        family.compare(key, in_points({r: a[r] for r in keep}), in_points({r: b[r] for r in keep}), margin)
    return family.decide()


def by_replicate(values: Sequence[float], replicates: Sequence[Any]) -> dict[Any, float]:
    """``values`` (one per replicate, in order) keyed by replicate, for ``decide``'s pairing."""
    return dict(zip(replicates, (float(v) for v in values), strict=True))


def and_list(items: Sequence[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def grouped(at: Mapping[str, Verdict]) -> str:
    """``inconclusive at 1/10 and 1/30, worse at 1/100``: where (the keys) each verdict holds, verdicts in the
    order they first appear."""
    places: dict[str, list[str]] = {}
    for where, v in at.items():
        places.setdefault(str(v), []).append(where)
    return ", ".join(f"{v} at {and_list(ws)}" for v, ws in places.items())


def changes(items: Sequence[tuple[str, str, Verdict, str | None]]) -> str:
    """One sentence on the verdicts that differ from the earlier 2-SE screen's, from (what was compared, where,
    its verdict, what the screen said or None); empty when none changed."""
    moved: dict[tuple[str, str, str], list[str]] = {}
    for what, where, v, screen in items:
        if screen is not None and changed(v, screen):
            moved.setdefault((what, screen, str(v)), []).append(where)
    if not moved:
        return ""
    return (
        f"Changed from {SCREEN}: "
        + "; ".join(
            f"{what} was {screen}{f' at {and_list(ws)}' if any(ws) else ''} (now {now})"
            for (what, screen, now), ws in moved.items()
        )
        + "."
    )


def test_cell(v: Verdict) -> str:
    """The paired test as ``Verdict.test_text`` writes it, or ``all 5 differences 0`` where the two sides are
    equal in every replicate (t is undefined there; the difference test's p is 1, TOST's 0)."""
    d = v.difference
    return f"all {d.n} differences 0" if d.n >= 2 and not any(d.differences) else v.test_text()
