"""Regenerate ``experiments/REPORT.md``: the answers to the project's four research questions.

    python -m experiments.run_all                 # default small settings (~10-15 min on 2 cores)
    python -m experiments.run_all --large         # the larger settings (hours on 2 cores)
    python -m experiments.run_all --only modes    # rerun one section, re-render the rest from results/
    python -m experiments.run_all --report-only   # re-render REPORT.md from experiments/results/

MNIST (the LeNet-300-100 parts) is read from ``--data-dir`` or ``$LOTTERYSEARCH_DATA``. Each section
saves its numbers to ``experiments/results/<key>.json`` and its figures to ``experiments/figures/``;
the report text, including the written answers, is generated from those saved numbers only.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from experiments import (
    collapse,
    conv,
    demo_gain,
    frontier,
    ga,
    lth,
    masking_modes,
    proxy,
    stability_study,
    ticket_match,
)
from experiments.common import ROOT, Context, Rendered, Section, load_results, save_results
from lotterysearch.errors import LotterySearchError


@dataclass(frozen=True)
class Retired:
    """A section whose numbers no longer stand. It keeps its place and number, so that the sections after it
    keep theirs, and its body says what measures its question now."""

    key: str
    title: str
    question: int
    body: str


SECTIONS: tuple[Section | Retired, ...] = (
    stability_study.SECTION,
    ga.SECTION,
    masking_modes.SECTION,
    collapse.SECTION,
    lth.SECTION,
    proxy.SECTION,
    conv.SECTION,
    demo_gain.SECTION,
    ticket_match.SECTION,
    Retired(
        "lenet_ticket",
        "The lottery-ticket regime: the GA at IMP's game (retired)",
        2,
        "This section measured an earlier search on LeNet-300-100 (a deterministic mutation pruning 49% of "
        "each layer, 3 inits) whose numbers were not regenerated with the current selection; it is retired. "
        "Section 2f measures the search against IMP's whole frontier on 8 development and 4 held-out inits.",
    ),
    frontier.SECTION,
)
QUESTIONS = {
    1: "Does SynFlow (or another pruner) produce the same network from different initial parameterizations?",
    2: "Can a genetic algorithm find the lottery ticket?",
    3: "Can masking be applied only in the forward pass, or only in the gradient, and what does each cost?",
    4: "Does SynFlow avoid layer collapse up to the network's maximal compression (the Maximal Critical "
    "Compression axiom) where other pruners fail?",
    5: "Do lottery tickets exist where we search (Frankle & Carbin on LeNet-300-100 / MNIST), and do the tickets of "
    "different inits coincide?",
}


def settings_text() -> str:
    """What each section runs, at both settings (generated from the sections' own settings)."""
    lines = ["| section | small (default) | large (`--large`) |", "|---|---|---|"]
    cfgs = stability_study.CONFIGS
    lines.append(
        "| 1. stability | "
        + ", ".join(f"[{c}](configs/{c})" for c in cfgs["small"])
        + " | "
        + ", ".join(f"[{c}](configs/{c})" for c in cfgs["large"])
        + " |"
    )

    def modes(s: masking_modes.ModesSettings) -> str:
        models = "; ".join(f"`{m.model}`/{m.dataset} {m.training.steps} steps" for m in s.models)
        return f"{models}; {s.pruner} at densities {', '.join(f'{d:g}' for d in s.densities)}; {len(s.seeds)} seeds"

    def coll(s: collapse.CollapseSettings) -> str:
        return (
            "; ".join(
                f"`{m.model}` {len(m.seeds)} seed(s), grid step {m.step:g} in log10 ρ" for m in s.models
            )
            + f"; {', '.join(s.pruners)}; with and without biases"
        )

    lines.append(
        f"| 2. GA vs tickets | {ga.describe(ga.SETTINGS['small'])} | {ga.describe(ga.SETTINGS['large'])} |"
    )
    lines.append(
        f"| 3. masking modes | {modes(masking_modes.SETTINGS['small'])} | {modes(masking_modes.SETTINGS['large'])} |"
    )
    lines.append(f"| 4. collapse | {coll(collapse.SETTINGS['small'])} | {coll(collapse.SETTINGS['large'])} |")
    lines.append(
        f"| 4b. convnets | {conv.describe(conv.SETTINGS['small'])} | {conv.describe(conv.SETTINGS['large'])} |"
    )
    lines.append(
        "| 5. lottery tickets | "
        + " | ".join(f"[{lth.CONFIGS[k]}](configs/{lth.CONFIGS[k]})" for k in ("small", "large"))
        + " |"
    )

    def prox(s: proxy.ProxySettings) -> str:
        return (
            f"`{s.model}`/{s.dataset}: {len(s.prune_seeds) * len(s.compressions) * len(proxy.KINDS)} masks, "
            f"{s.training.steps} steps, {len(s.proxy_seeds)} + {len(s.confirm_seeds)} seeds"
        )

    lines.append(f"| 2b. proxy | {prox(proxy.SETTINGS['small'])} | {prox(proxy.SETTINGS['large'])} |")
    for number, section in (
        ("2c. demo vs its seeds", demo_gain),
        ("2d. the ticket of θ₀", ticket_match),
    ):
        cells = " | ".join(section.describe(section.SETTINGS[k]) for k in ("small", "large"))
        lines.append(f"| {number} | {cells} |")
    f = frontier.SETTINGS.name
    lines.append(f"| 2f. IMP's frontier | [{f}](configs/{f}) (both settings) | the same |")
    return "\n".join(lines)


def section_number(section: Section | Retired) -> str:
    """The question's number, with a letter after the first section answering the same question (2, 2b)."""
    same = [s.key for s in SECTIONS if s.question == section.question]
    k = same.index(section.key)
    return f"{section.question}{'abcdefgh'[k] if k else ''}"


def compose(
    rendered: dict[str, Rendered],
    timings: dict[str, float | None],
    header: str,
    cpu: dict[str, float] | None = None,
) -> str:
    """REPORT.md from the rendered sections; ``timings`` are wall seconds, ``cpu`` the CPU seconds of the
    process that ran each section (a shared machine stretches the first, not the second)."""
    by_question = sorted(SECTIONS, key=lambda s: s.question)
    parts = ["# lotterysearch: answers to the research questions", "", header, "", "## Answers", ""]
    for q in sorted(QUESTIONS):
        parts += [f"### {q}. {QUESTIONS[q]}", ""]
        parts += [
            p
            for s in by_question
            if s.question == q and rendered[s.key].answer
            for p in (rendered[s.key].answer, "")
        ]
        parts += [p for s in by_question if q in rendered[s.key].also for p in (rendered[s.key].also[q], "")]
    for s in by_question:
        t = timings.get(s.key)
        parts += [f"## {section_number(s)}. {s.title}", ""]
        if t is not None:
            c = (cpu or {}).get(s.key)
            used = "" if c is None else f" (CPU time of its process: {c / 60:.1f} min)"
            parts += [f"*Section runtime: {t / 60:.1f} min{used}.*", ""]
        parts += [rendered[s.key].body, ""]
    parts += [
        "## Settings and how to regenerate",
        "",
        "`python -m experiments.run_all` reruns everything at the small settings; `--large` at the larger "
        "ones (hours on 2 CPU cores); `--only KEY[,KEY]` reruns some sections (keys: "
        + ", ".join(f"`{s.key}`" for s in SECTIONS if isinstance(s, Section))
        + ") and re-renders the others from `experiments/results/`; `--report-only` only re-renders. MNIST is "
        "read from `--data-dir` or `$LOTTERYSEARCH_DATA`. One stability config alone: `lotterysearch stability "
        "experiments/configs/stability_mnist1d.toml --out DIR`.",
        "",
        settings_text(),
        "",
    ]
    return "\n".join(parts)


def _placeholder(section: Section) -> Rendered:
    msg = f"*Not run yet at these settings: `python -m experiments.run_all --only {section.key}`.*"
    return Rendered(body=msg, answer=msg)


def run_all(
    settings: str = "small",
    *,
    only: Sequence[str] | None = None,
    report_only: bool = False,
    data_dir: str = "",
    root: Path = ROOT,
    progress=print,  # noqa: ANN001 - Callable[[str], None]
) -> Path:
    """Run the chosen sections, then write ``root/REPORT.md`` from every section's saved results."""
    ctx = Context(settings, root, data_dir, progress)
    keys = [s.key for s in SECTIONS if isinstance(s, Section)]
    chosen = set(keys if only is None else only)
    unknown = chosen - set(keys)
    if unknown:
        raise LotterySearchError(
            f"unknown section(s) {', '.join(sorted(unknown))} (known: {', '.join(keys)})"
        )
    import torch

    t0 = time.monotonic()
    rendered, timings, cpu, loads, threads = {}, {}, {}, [], set()
    for section in SECTIONS:
        if isinstance(section, Retired):
            rendered[section.key], timings[section.key] = Rendered(body=section.body, answer=""), None
            continue
        if not report_only and section.key in chosen:
            t1, c1, load1 = time.monotonic(), time.process_time(), os.getloadavg()[0]
            results = section.run(ctx)
            results = {
                **results,
                "settings_name": settings,
                "elapsed_s": time.monotonic() - t1,
                "cpu_s": time.process_time() - c1,
                "load_average": [load1, os.getloadavg()[0]],
                "torch_threads": torch.get_num_threads(),
            }
            save_results(ctx, section.key, results)
            progress(f"[{section.key}] done in {results['elapsed_s']:.0f} s")
        results = load_results(ctx, section.key)
        pending = getattr(sys.modules[section.run.__module__], "PENDING", False)
        if results is None or (not pending and results.get("settings_name") != settings):
            rendered[section.key], timings[section.key] = _placeholder(section), None
            continue
        rendered[section.key] = section.render(results, ctx)
        timings[section.key] = None if pending else results.get("elapsed_s")
        if not pending and "cpu_s" in results:
            cpu[section.key] = results["cpu_s"]
        if not pending and "load_average" in results:
            loads += results["load_average"]
            threads.add(results["torch_threads"])
    total = sum(t for t in timings.values() if t is not None)
    ran = "" if report_only else f"; this invocation took {(time.monotonic() - t0) / 60:.1f} min wall time"
    load = (
        f"load average {min(loads):.1f} to {max(loads):.1f} at the sections' starts and ends" if loads else ""
    )
    header = (
        "*Generated by `python -m experiments.run_all`"
        + (" --large" if settings == "large" else "")
        + " — do not edit by hand: every number, and the sentences built around them, come from "
        f"`experiments/results/`.* Settings: **{settings}**. Sections' compute time: {total / 60:.1f} min"
        + ran
        + f", on {os.cpu_count()} CPU cores with {', '.join(map(str, sorted(threads))) or '?'} torch thread(s); "
        + load
        + " (a shared machine: other jobs ran meanwhile, so times are upper bounds). Mean ± std is over "
        "seeds (sample std, ddof 1) unless stated otherwise."
    )
    report = root / "REPORT.md"
    report.write_text(compose(rendered, timings, header, cpu))
    progress(f"wrote {report}")
    return report


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m experiments.run_all", description=__doc__.split("\n")[0])
    p.add_argument("--large", action="store_true", help="the larger settings (hours on 2 cores)")
    p.add_argument(
        "--only", default=None, help="comma-separated section keys to run; the rest are re-rendered"
    )
    p.add_argument("--report-only", action="store_true", help="re-render REPORT.md from experiments/results/")
    p.add_argument("--data-dir", default=os.environ.get("LOTTERYSEARCH_DATA", ""), help="MNIST IDX files")
    p.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest for these small nets)")
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(max(1, args.threads))
    only = [k.strip() for k in args.only.split(",")] if args.only else None
    if not args.report_only and not args.data_dir:
        print(
            "run_all: error: the LeNet-300-100 parts need MNIST: pass --data-dir DIR or set LOTTERYSEARCH_DATA",
            file=sys.stderr,
        )
        return 2
    try:
        run_all(
            "large" if args.large else "small",
            only=only,
            report_only=args.report_only,
            data_dir=args.data_dir,
        )
    except LotterySearchError as e:
        print(f"run_all: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
