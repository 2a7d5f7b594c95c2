"""Question 1: does SynFlow (or another pruner) give the same network from different initializations?

Runs the library's study (``lotterysearch.runs.stability.run_stability``, what ``lotterysearch stability`` runs)
on the configs below (their full reports land in ``results/<name>/report.md``, their plots in ``figures/``)
and composes this report's section: the tables of each run and the answer written from the numbers.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from experiments.common import ROOT, Context, Rendered, Section, in_points, method_text
from lotterysearch.core.units import MATCH_TOLERANCE
from lotterysearch.runs.stability import (
    NOT_MEASURED,
    accuracy_table,
    load_stability_config,
    overlap_table,
    rounding_table,
    run_stability,
    stop_steps,
    unit_table,
)
from lotterysearch.settings import to_dict
from lotterysearch.stats import markdown_table, pm
from lotterysearch.verdicts import Family, Verdict

CONFIGS = {
    "small": (
        "stability_mnist1d.toml",
        "stability_lenet.toml",
        "stability_mnist1d_converged.toml",
        "stability_cnn1d.toml",
        "stability_cnn1d_converged.toml",
    ),
    "large": ("stability_mnist1d_large.toml", "stability_lenet_large.toml"),
}
# Declared before the 10-init runs: a control within ±0.5 points of the mask trained from its own init counts as
# "the mask's weights beyond this control do not matter", tested by TOST.
EQUIVALENCE_MARGIN = 0.5
CONTROLS = {  # the accuracy controls, each compared with the mask from its own init (paired by init)
    "other": "another init",
    "shuffled": "layerwise shuffle (random, same layer densities)",
    "matched_shuffled": "layerwise random, effective density matched",
    "degree_shuffled": "degree-preserving shuffle",
}
# Where each control's effective density is stored: the trained masks' (in the accuracy record), else the
# overlap study's draws of the same control (its result row).
CONTROL_DENSITY = {
    "own": "effective_density",
    "shuffled": "shuffled_effective_density",
    "matched_shuffled": "matched_effective_density",
    "degree_shuffled": "degree_effective_density",
}
AT_CHANCE = 0.05  # |κ| below this counts as "no more overlap than chance"
ROUNDING_STABLE_J = 0.9  # mean J between the two rounding rules at or above this counts as "barely moves"


def run(ctx: Context) -> dict[str, Any]:
    names = []
    for file in CONFIGS[ctx.settings]:
        cfg = load_stability_config(ROOT / "configs" / file)
        if not cfg.data_dir and ctx.data_dir:
            cfg = dataclasses.replace(cfg, data_dir=ctx.data_dir)
        names.append(cfg.name)
        done = ctx.results / cfg.name / "metrics.json"
        if done.is_file() and _same_study(json.loads(done.read_text())["config"], to_dict(cfg)):
            ctx.progress(f"[stability] {file}: measured already ({done.relative_to(ROOT)}), kept")
            continue
        ctx.progress(f"[stability] {file}")
        run_stability(
            cfg, ctx.results / cfg.name, progress=lambda s: ctx.progress(f"  {s}"), figures_dir=ctx.figures
        )
    return {"runs": names, "configs": list(CONFIGS[ctx.settings])}


def _same_study(stored: Mapping[str, Any], cfg: Mapping[str, Any]) -> bool:
    """Whether a stored study ran these settings (where the data came from aside), so that a long section
    resumes: a study measured before is kept, not run again."""
    return {**stored, "data_dir": ""} == {**cfg, "data_dir": ""}


def _metrics(ctx: Context, name: str) -> dict[str, Any]:
    return json.loads((ctx.results / name / "metrics.json").read_text())


def _rows(m: Mapping[str, Any], pruner: str) -> list[Mapping[str, Any]]:
    return sorted((r for r in m["results"] if r["pruner"] == pruner), key=lambda r: r["compression"])


def _span(values: Sequence[float], digits: int = 3) -> str:
    lo, hi = min(values), max(values)
    return f"{lo:.{digits}f}" if math.isclose(lo, hi) else f"{lo:.{digits}f} to {hi:.{digits}f}"


def _rhos(rows: Sequence[Mapping[str, Any]]) -> str:
    return ", ".join(f"{r['compression']:g}" for r in rows)


def _units(m: Mapping[str, Any]) -> str:
    """What the hidden units of a study's model are: a convnet's channels, an MLP's neurons."""
    return "channels" if m["model"].startswith(("cnn", "conv")) else "neurons"


def _cv(row: Mapping[str, Any]) -> float:
    """Largest coefficient of variation (std/mean) of a layer's density across seeds."""
    return max((s["std"] / s["mean"] for s in row["layer_density"].values() if s["mean"] > 0), default=0.0)


def model_answer(m: Mapping[str, Any], verdicts: Mapping[Any, Verdict]) -> list[str]:
    """Sentences about SynFlow (and the other pruners) on one model, generated from its metrics."""
    n = len(m["init_seeds"])
    sf = [r for r in _rows(m, "synflow") if r["collapsed"] == 0]
    out = []
    if not sf:
        return [f"On `{m['model']}` no uncollapsed SynFlow masks were measured."]
    kappas = [r["excess_overlap"]["mean"] for r in sf]
    at_chance = all(abs(k) < AT_CHANCE for k in kappas)
    mid = min(sf, key=lambda r: abs(math.log10(r["compression"]) - 2))  # the row nearest ρ = 100
    out.append(
        f"On `{m['model']}` / {m['dataset']} ({n} inits, ρ = {_rhos(sf)}), SynFlow's masks from different "
        f"initializations overlap {'no more than chance' if at_chance else 'more than chance'} as sets of "
        f"weights: κ = (J − J_chance)/(1 − J_chance) is {_span(kappas)} across ρ (at ρ = {mid['compression']:g}: "
        f"J = {pm(mid['jaccard'])} against {mid['chance_jaccard']['mean']:.3f} for independent random masks with "
        "the same per-layer counts)."
    )
    classes = [r["classes"] for r in sf]
    above = [r for r in sf if r["aligned_excess_ci"] is not None and r["aligned_excess_ci"][0] > 0]
    aligned = _span([r["aligned_jaccard"]["mean"] for r in sf])
    aligned_chance = _span([r["aligned_chance_jaccard"]["mean"] for r in sf])
    degree_chance = _span([r["degree_aligned_chance_jaccard"]["mean"] for r in sf])
    if all(c == n for c in classes):
        text = f"Nor are they one network up to relabelling: the {n} masks are {n} distinct isomorphism classes at every ρ"
    else:
        text = f"Up to relabelling, the {n} masks form {_span(classes, 0)} isomorphism classes per ρ"
    text += (
        f", and aligning hidden units ({_units(m)}) raises J only to {aligned}, against {aligned_chance} for the same "
        f"alignment on layerwise-shuffled copies and {degree_chance} on degree-preserving shuffles (every "
        "unit's in- and out-degree kept, the null that fits SynFlow's uneven degrees): "
    )
    if above:
        text += (
            f"above the degree null at ρ = {_rhos(above)} (95% bootstrap interval over inits above 0), so the "
            "masks share structure beyond their units' degrees, but they are far from identical."
        )
    else:
        text += (
            "the 95% bootstrap interval over inits of the excess over the degree null includes 0 at every ρ: "
            "no structure beyond the units' degrees is detected."
        )
    out.append(text)
    units = [
        f"ρ = {r['compression']:g}: "
        + " / ".join(
            f"{u['mean']:.0f} (CV {u['std'] / u['mean']:.0%})" if u["mean"] else "0" for u in r["live_units"]
        )
        for r in sf
    ]
    out.append(
        "Counted in units (inputs / hidden layers / outputs live on an input→output path, mean over inits "
        f"and coefficient of variation): {'; '.join(units)}. Which inputs are live overlaps with J = "
        f"{_span([r['input_jaccard']['mean'] for r in sf])} against {_span([r['input_chance_jaccard']['mean'] for r in sf])} "
        "for random sets of the same sizes."
    )
    cvs = [_cv(r) for r in sf]
    low_cv = max((_cv(r) for r in sf if r["compression"] <= 100), default=max(cvs))
    if low_cv < 0.1:
        out.append(
            "What SynFlow does reproduce is the per-layer density profile: across seeds a layer's density "
            f"varies by a coefficient of variation of at most {low_cv:.1%} for ρ ≤ 100 ({max(cvs):.1%} over all ρ)."
        )
    else:
        out.append(
            f"Even the per-layer density profile varies across seeds: coefficient of variation up to {low_cv:.1%} "
            f"for ρ ≤ 100 ({max(cvs):.1%} over all ρ)."
        )
    trained = [r for r in sf if r["accuracy"] is not None]
    for r in trained:
        a = r["accuracy"]
        v = {c: verdicts.get((m["name"], "synflow", r["compression"], c)) for c in CONTROLS}
        perm = a["permuted"]
        diffs = ", ".join(
            f"{CONTROLS[c]} " + (f"{v[c].interval()} ({v[c]})" if v[c] is not None else NOT_MEASURED)
            for c in CONTROLS
        )
        out.append(
            f"At ρ = {r['compression']:g} ({_budget(m)}), trained from their own init the masks reach "
            f"{pm(a['own'])} test accuracy; own init minus control, in points: {diffs}. Isomorphic (permuted) "
            f"copies of one mask spread by σ = {perm['std']:.3f} ({perm['n']} copies, mean {perm['mean']:.3f}) "
            f"against σ = {a['own']['std']:.3f} across seeds." + _stopped_text(m, a)
        )
    snip = [r for r in _rows(m, "snip") if r["collapsed"] == 0]
    if snip:
        over = [r for r in snip if r["excess_overlap_ci"] is not None and r["excess_overlap_ci"][0] > 0]
        out.append(
            f"SNIP, the one data-dependent pruner here, has κ = {_span([r['excess_overlap']['mean'] for r in snip])} "
            f"over its uncollapsed ρ ({_rhos(snip)}): "
            + (
                f"above chance at ρ = {_rhos(over)} (95% bootstrap interval of κ over inits above 0), far "
                "from identity."
                if over
                else "at chance."
            )
        )
    rnd = m.get("rounding")
    if rnd:
        js = [p["jaccard"] for p in rnd["per_seed"]]
        bigger = rnd["jaccard"]["mean"] > rnd["cross_seed_jaccard"]["mean"]
        out.append(
            f"The procedure itself: on one init, SynFlow's two rounding rules (`round` vs the reference code's, "
            f"which differ by one weight in {rnd['schedule_steps_differing']} of {rnd['iterations']} steps) end "
            f"at J = {pm(rnd['jaccard'])} (range {min(js):.2f} to {max(js):.2f} over seeds "
            f"{', '.join(str(p['seed']) for p in rnd['per_seed'])}) at ρ = {rnd['compression']:g}, against "
            f"J = {pm(rnd['cross_seed_jaccard'])} between inits. "
            + (
                "One weight of rounding moves the mask as much as a new initialization."
                if not bigger
                else "One weight of rounding barely moves the mask; a new initialization replaces it."
                if rnd["jaccard"]["mean"] >= ROUNDING_STABLE_J
                else "One weight of rounding moves the mask a long way, but less than a new initialization does."
            )
        )
    return out


def headline(runs: Sequence[Mapping[str, Any]], verdicts: Mapping[Any, Verdict]) -> str:
    """The one-paragraph verdict, chosen from the numbers of all runs (SynFlow, uncollapsed ρ)."""
    rows = [(m, r) for m in runs for r in _rows(m, "synflow") if r["collapsed"] == 0]
    if not rows:
        return "**Not measured**: no uncollapsed SynFlow masks."
    chance = all(abs(r["excess_overlap"]["mean"]) < AT_CHANCE for _, r in rows)
    distinct = all(r["classes"] == len(m["init_seeds"]) for m, r in rows)
    low = [_cv(r) for _, r in rows if r["compression"] <= 100]
    if chance and distinct:
        verdict = (
            "**No.** From different initializations SynFlow gives different masks: their raw overlap is at "
            "chance level at every ρ measured, and no two of them are the same network up to relabelling "
            "hidden neurons."
        )
    elif distinct:
        verdict = (
            "**No, though not at random.** SynFlow's masks from different inits overlap more than chance, "
            "but no two are the same network up to relabelling hidden neurons."
        )
    else:
        verdict = "**Partly.** Some inits give isomorphic masks (see the class counts)."
    if low and max(low) < 0.1:
        verdict += (
            f" What is reproducible is the network's shape: the per-layer density profile (coefficient of "
            f"variation across seeds ≤ {max(low):.1%} per layer for ρ ≤ 100), the number of live units per layer, "
            "and the units' degrees, which explain the whole of the overlap that aligning hidden units finds"
            + (
                " (aligned overlap within its degree-preserving null's 95% interval at every ρ)."
                if all(r["aligned_excess_ci"] is not None and r["aligned_excess_ci"][0] <= 0 for _, r in rows)
                else "."
            )
        )
    where: dict[tuple[str, str], list[str]] = {}
    for m, r in rows:
        if r["accuracy"] is None:
            continue
        at = f"ρ = {r['compression']:g} on `{m['model']}` / {m['dataset']} ({_budget(m)}{_at_budget(m, r['accuracy'])})"
        for c in ("shuffled", "matched_shuffled", "degree_shuffled"):
            v = verdicts.get((m["name"], "synflow", r["compression"], c))
            if v is None:
                continue
            kind = "costs" if v.kind == "better" else "level" if v.equivalent else "open"
            where.setdefault((c, kind), []).append(f"{at}: {v.interval()}")
    if where:
        verdict += (
            " What the mask adds to its shape, in accuracy (own init minus control, points, paired by init, "
            "Holm-corrected):"
        )
        for c, name in (
            ("shuffled", "a layerwise shuffle"),
            ("matched_shuffled", "a layerwise-random mask at the mask's effective density"),
            ("degree_shuffled", "a degree-preserving shuffle"),
        ):
            if not any(key[0] == c for key in where):
                continue
            parts = [
                f"{label} at {'; '.join(where[(c, kind)])}"
                for kind, label in (
                    ("costs", "costs accuracy"),
                    ("level", f"is equivalent within ±{EQUIVALENCE_MARGIN:g}"),
                    ("open", "is not shown to differ"),
                )
                if (c, kind) in where
            ]
            verdict += f" {name[0].upper()}{name[1:]} {', and '.join(parts)}."
        if ("shuffled", "costs") in where and ("degree_shuffled", "costs") not in where:
            verdict += (
                " This changes the report's earlier reading that the positions of the weights matter: the "
                "layerwise shuffle behind it evens out the units' degrees, and a shuffle that keeps them is not "
                "shown to cost accuracy."
            )
        if ("matched_shuffled", "costs") in where and ("degree_shuffled", "costs") not in where:
            verdict += (
                " Nor is the shuffle's cost only the weights it strands off every input→output path: a "
                "layerwise-random mask with the mask's effective density still costs accuracy at the budgets listed above, "
                "so what the mask adds beyond its layer densities and its effective size is its units' degrees."
            )
    return verdict


def _stopped_text(m: Mapping[str, Any], a: Mapping[str, Any]) -> str:
    """Whether every trained method stopped early before the budget ended, from the stored steps."""
    budget = m["config"]["training"]["steps"]
    steps = {c: a[c]["stop_steps"] for c in ("own", *CONTROLS) if a.get(c, {}).get("stop_steps")}
    if not steps:
        return ""
    late = {c: sum(s >= budget for s in v) for c, v in steps.items()}
    if not any(late.values()):
        return (
            f" Every method stopped before its {budget}-step budget ended (latest early-stopping step "
            f"{max(max(v) for v in steps.values())})."
        )
    return (
        f" Not every method stopped before its {budget}-step budget ended: "
        + ", ".join(
            f"{n} of {len(steps[c])} {CONTROLS.get(c, 'own-init')} runs" for c, n in late.items() if n
        )
        + " stopped at the last evaluation."
    )


def _at_budget(m: Mapping[str, Any], a: Mapping[str, Any]) -> str:
    """ ", not converged: k of n runs stopped at the budget" when early-stopped runs reached its end."""
    budget = m["config"]["training"]["steps"]
    steps = [s for c in ("own", *CONTROLS) for s in (a.get(c) or {}).get("stop_steps") or []]
    late = sum(s >= budget for s in steps)
    return f", not converged: {late} of {len(steps)} runs stopped at the budget" if late else ""


def _budget(m: Mapping[str, Any]) -> str:
    t = m["config"]["training"]
    stop = f", early-stopped (evaluation every {t['eval_every']})" if t.get("eval_every") else ""
    return f"{t['steps']} steps{stop}"


def accuracy_verdicts(runs: Sequence[Mapping[str, Any]]) -> dict[Any, Verdict]:
    """Own init against each control (``CONTROLS``), paired by init, in points: one Holm family over every
    trained pruner and ρ of every run, equivalence within ``EQUIVALENCE_MARGIN``."""
    family = Family()
    for m in runs:
        for r in m["results"]:
            a = r["accuracy"]
            if a is None:
                continue
            own = in_points(dict(enumerate(a["own"]["values"])))
            for c in CONTROLS:
                if c not in a:  # a control the stored study did not train
                    continue
                other = in_points(dict(enumerate(a[c]["values"])))
                family.compare((m["name"], r["pruner"], r["compression"], c), own, other, EQUIVALENCE_MARGIN)
    return family.decide()


def controls_table(runs: Sequence[Mapping[str, Any]], verdicts: Mapping[Any, Verdict]) -> str:
    """Does the mask matter beyond its layer densities and its degrees? One row per model, budget, pruner and
    ρ: the own-init accuracy, then own minus each control in points with its interval and verdict."""
    rows = []
    for m in runs:
        for r in m["results"]:
            if r["accuracy"] is None:
                continue
            a = r["accuracy"]
            keys = {c: (m["name"], r["pruner"], r["compression"], c) for c in CONTROLS}
            cells = [
                f"{verdicts[k].interval()} {verdicts[k]}" if k in verdicts else NOT_MEASURED
                for k in keys.values()
            ]
            budget = m["config"]["training"]["steps"]
            if m["config"]["training"].get("eval_every"):
                stops = [stop_steps(a[c], budget) if c in a else NOT_MEASURED for c in ("own", *CONTROLS)]
            else:
                stops = ["none (no evaluation during training: the fixed budget)"]
            rows.append((f"`{m['model']}`", _budget(m), r["pruner"], f"{r['compression']:g}",
                         f"{100 * a['own']['mean']:.2f}", *cells, _densities(r), " / ".join(stops)))  # fmt: skip
    header = [
        "model",
        "training",
        "pruner",
        "ρ",
        "own init (%)",
        *(f"own − {name}" for name in CONTROLS.values()),
        "effective density: mask / layerwise / matched / degree",
        "early-stopping step, mean (stopped before the budget): own / another init / layerwise / matched / degree",
    ]
    return markdown_table(header, rows)


def _densities(r: Mapping[str, Any]) -> str:
    """The effective density of the mask and of each shuffled control, as trained where stored."""
    a = r["accuracy"] or {}
    out = []
    for c, key in CONTROL_DENSITY.items():
        stat = (a.get(c) or {}).get("effective_density") or r.get(key)
        out.append(NOT_MEASURED if stat is None else f"{stat['mean']:.4f}")
    return " / ".join(out)


SYMMETRY = (
    "Why the raw overlap must sit at chance for SynFlow, magnitude and random pruning: these pruners do not "
    "look at data, and PyTorch's i.i.d. initialization is unchanged in distribution by permuting the inputs "
    "or outputs of any layer, so every position of a layer is kept with the same probability; masks from "
    "independent seeds are independent, hence E|A∩B| = Σ_l E[a_l]·E[b_l]/n_l, the chance level. The "
    "question is only open up to relabelling of neurons (aligned overlap, isomorphism classes) and at the "
    "level of per-layer densities, which is what the table separates."
)


def render(results: Mapping[str, Any], ctx: Context) -> Rendered:
    parts, answer = [], []
    runs = [_metrics(ctx, name) for name in results["runs"]]
    verdicts = accuracy_verdicts(runs)
    for name in results["runs"]:
        m = _metrics(ctx, name)
        cfg = m["config"]
        t = cfg["training"]
        parts += [
            f"### `{m['model']}` on {m['dataset']}",
            "",
            f"{len(m['init_seeds'])} init seeds, ρ ∈ {{{', '.join(f'{c:g}' for c in cfg['pruning']['compressions'])}}}, "
            f"ρ_max = {m['max_compression']:g}; training {t['steps']} steps of {t['optimizer']} (lr {t['lr']:g}, "
            f"batch {t['batch_size']}) at ρ ∈ {{{', '.join(f'{c:g}' for c in t['compressions']) or 'all'}}}; "
            f"runtime {m['elapsed_s']:.0f} s. Full report: [results/{name}/report.md](results/{name}/report.md).",
            "",
            overlap_table(m),
            "",
            "Units (live units per unit layer; live inputs' overlap against random sets of the same sizes; "
            "hidden units after alignment against aligned degree-preserving shuffles):",
            "",
            unit_table(m),
            "",
            f"![overlap]({ctx.figure_link(ctx.figures / f'{name}_overlap.png')})",
            "",
            f"![per-layer densities]({ctx.figure_link(ctx.figures / f'{name}_layer_density.png')})",
            "",
        ]
        acc = accuracy_table(m)
        if acc:
            dense = m["dense_accuracy"]
            parts += [
                f"Test accuracy (dense: {pm(dense)}):",
                "",
                acc,
                "",
                f"![accuracy]({ctx.figure_link(ctx.figures / f'{name}_accuracy.png')})",
                "",
            ]
        if m.get("rounding"):
            parts += [
                "Rounding rule, SynFlow on one init (`round` vs `reference`):",
                "",
                rounding_table(m["rounding"]),
                "",
            ]
        answer += model_answer(m, verdicts)
    head = headline(runs, verdicts)
    parts += [
        "### Does the mask matter beyond its layer densities and its degrees?",
        "",
        "Test accuracy (early-stopping iteration where the training evaluates) of each pruner's masks from their "
        "own init, and the difference to each control in points (mean over inits, 95% interval): the same mask "
        "from another init, a layerwise shuffle (random positions at the same layer densities), a layerwise-"
        "random mask whose effective density matches the mask's (every layer's count scaled by one common "
        "factor, found by bisection, until the weights on input→output paths are as many as the mask's, within "
        f"{MATCH_TOLERANCE:.0%}: a plain shuffle strands weights off every path) and a degree-preserving shuffle (every unit's in- "
        "and out-degree kept), each from the mask's own init and batch order. The last columns give each "
        "control's effective density and, where the training evaluates, the mean early-stopping step and how "
        "many runs stopped before the budget ended; *not measured* marks a control a stored study predates. "
        + method_text(
            verdicts, EQUIVALENCE_MARGIN, True, "`experiments/stability_study.py` (EQUIVALENCE_MARGIN)", None
        ),
        "",
        controls_table(runs, verdicts),
        "",
    ]
    body = "\n".join(parts) + "\n"
    return Rendered(body=body, answer=head + "\n\n" + "\n\n".join(answer) + "\n\n" + SYMMETRY)


SECTION = Section("stability", "Mask stability across initializations", 1, run, render)
