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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
