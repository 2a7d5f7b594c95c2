"""Questions 4, 1 and 5 on convolutional networks: Frankle & Carbin's Conv-2 on MNIST (``conv2:28x28x1``) and
the MNIST-1D paper's 1-D CNN on MNIST-1D (``cnn1d:40:25k5-25-25:10``).

* **collapse** (question 4): each pruner prunes a fresh init at ρ = 10^x on a grid up to ρ_max = |θ|/L, plus
  ρ_max itself, with and without biases (``pruning.collapse_sweep``, as in the MLP section). In a convnet a
  channel with no live kernel in or out is dead, and the flatten ties each channel of the last convolution to
  its block of fc inputs (``Mask.is_collapsed``); ρ_cr is the largest grid ρ with no collapse at or below it.
* **stability** (question 1): SynFlow masks of different inits at a few ρ, compared by
  ``stability.compare_masks``: raw Jaccard against its chance level, Jaccard after aligning channels and
  hidden neurons (against aligned shuffled copies), and isomorphism classes (channels as units).
* **tickets** (question 5): an IMP run of the service (``lotterysearch imp``) on the 1-D CNN: layerwise 20%
  per round, the output layer (the CNN's one fully connected layer) at 10%, rewinding to the init. Tickets of
  chosen rounds are confirmed (``lotterysearch confirm``) from a fresh init (the reinit control); from their
  own init a ticket's confirmation is its round's training. Each ticket is compared with the dense network
  (its round 0) and with its reinit control, paired by init, as one family (``lotterysearch.verdicts``: paired
  t, Holm, TOST within a declared margin). Conv-2 tickets are not run: Conv-2 trains too slowly on 2 CPU cores
  for either setting.
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

import lotterysearch as ls
from experiments import common
from experiments.collapse import collapse_figure, critical_cell, log_stats, sweep_all
from experiments.common import ROOT, Context, Rendered, Section
from experiments.lth import round_percent, round_stat
from lotterysearch.core.data import load_dataset
from lotterysearch.core.masks import Mask
from lotterysearch.core.models import build_model
from lotterysearch.pruning.pruners import compression_grid, max_compression, prune
from lotterysearch.runs.stability import compare_masks
from lotterysearch.settings import IMPConfig, load_imp_config
from lotterysearch.stats import markdown_table, pm
from lotterysearch.verdicts import Verdict

REINIT_SEED = 1000  # the reinit control's init seed, far from any trajectory's


@dataclass(frozen=True)
class ConvCase:
    """One convnet on its dataset: the collapse sweep's seeds and grid, the stability study's seeds and ρ."""

    label: str
    model: str
    dataset: str
    collapse_seeds: tuple[int, ...]
    step: float  # grid spacing in log10 ρ
    stability_seeds: tuple[int, ...]
    stability_compressions: tuple[float, ...]
    biases: tuple[bool, ...] = (
        True,
        False,
    )  # collapse with and without biases (SynFlow's flow runs through |b|)


@dataclass(frozen=True)
class ConvSettings:
    cases: tuple[ConvCase, ...]
    imp_config: str  # experiments/configs/<file>: the tickets' IMP run
    confirm_rounds: tuple[int, ...]  # rounds whose tickets are confirmed (own init and reinit)
    pruners: tuple[str, ...] = ("synflow", "snip", "magnitude", "random")
    # Two test accuracies within this many points count as level (a ticket "matches" the dense network): the
    # margin of every equivalence test (TOST) of the tickets, as section 1's on MNIST-1D. Declared before the
    # next run, which stores it with its settings; the saved run was made before it was declared.
    equivalence_margin: float = 0.5


CONV2 = "conv2:28x28x1"
CNN1D = "cnn1d:40:25k5-25-25:10"
SETTINGS = {
    "small": ConvSettings(
        cases=(
            ConvCase("Conv-2 / MNIST", CONV2, "mnist", (0,), 1.0, (0, 1, 2), (100.0, 10000.0), biases=(False,)),
            ConvCase("1-D CNN / MNIST-1D", CNN1D, "mnist1d", (0, 1, 2), 0.1, (0, 1, 2, 3, 4), (10.0, 100.0, 1000.0)),
        ),
        imp_config="cnn1d_imp_small.toml",
        confirm_rounds=(4, 8),
    ),
    "large": ConvSettings(
        cases=(
            ConvCase("Conv-2 / MNIST", CONV2, "mnist", (0, 1, 2), 0.25, (0, 1, 2, 3, 4), (10.0, 100.0, 1000.0, 10000.0)),
            ConvCase("1-D CNN / MNIST-1D", CNN1D, "mnist1d", (0, 1, 2, 3, 4), 0.05, (0, 1, 2, 3, 4), (10.0, 100.0, 1000.0)),
        ),
        imp_config="cnn1d_imp_large.toml",
        confirm_rounds=(2, 4, 6, 8, 10, 12, 14),
    ),
}  # fmt: skip


# ---- measuring ----------------------------------------------------------------------------------------
def run(ctx: Context) -> dict[str, Any]:
    s = SETTINGS[ctx.settings]
    cfg = load_imp_config(ROOT / "configs" / s.imp_config)
    return measure(s, cfg, ctx)


def measure(s: ConvSettings, imp_cfg: IMPConfig, ctx: Context) -> dict[str, Any]:
    """Everything the section reports: collapse and stability per case, then the IMP run's tickets."""
    out: dict[str, Any] = {"settings": asdict(s), "collapse": [], "stability": []}
    for case in s.cases:
        data = load_dataset(case.dataset, 0, data_dir=ctx.data_dir or None)
        out["collapse"].append(_collapse(case, s, data, ctx))
        out["stability"].append(_stability(case, data, ctx))
    out["tickets"] = tickets(imp_cfg, s.confirm_rounds, ctx)
    return out


def _collapse(case: ConvCase, s: ConvSettings, data: Any, ctx: Context) -> dict[str, Any]:
    t0 = time.monotonic()
    model = build_model(case.model, 0)
    rho_max = max_compression(model)
    xs = compression_grid(rho_max, case.step, include_max=True)
    tag = f"[conv] collapse {case.model}"
    sweeps = sweep_all(case.model, case.biases, s.pruners, case.collapse_seeds, xs, data, tag, ctx)
    sizes = Mask.ones(model).layer_total()
    return {
        "label": case.label,
        "model": case.model,
        "dataset": case.dataset,
        "seeds": list(case.collapse_seeds),
        "biases": list(case.biases),
        "step": case.step,
        "layer_sizes": sizes,
        "rho_max": rho_max,
        "grid": xs,
        "sweeps": sweeps,
        "elapsed_s": time.monotonic() - t0,
    }


STABILITY_KEYS = ("density", "effective_density", "collapsed", "classes", "jaccard", "chance_jaccard",
                  "excess_overlap", "aligned_jaccard", "aligned_chance_jaccard")  # fmt: skip


def _stability(case: ConvCase, data: Any, ctx: Context) -> dict[str, Any]:
    t0 = time.monotonic()
    rows = []
    for rho in case.stability_compressions:
        t1 = time.monotonic()
        masks = [
            prune(build_model(case.model, seed), "synflow", rho, data=data, seed=seed)
            for seed in case.stability_seeds
        ]
        t2 = time.monotonic()
        m = compare_masks(masks, np.random.default_rng([0, round(rho)]))
        rows.append({"compression": rho, **{k: m[k] for k in STABILITY_KEYS}, "prune_s": t2 - t1,
                     "compare_s": time.monotonic() - t2})  # fmt: skip
        ctx.progress(
            f"[conv] stability {case.model} synflow ρ={rho:g}: J {pm(m['jaccard'])} (chance "
            f"{m['chance_jaccard']['mean']:.3f}, aligned {pm(m['aligned_jaccard'])}), {m['classes']} classes"
        )
    return {"label": case.label, "model": case.model, "seeds": list(case.stability_seeds), "rows": rows,
            "elapsed_s": time.monotonic() - t0}  # fmt: skip


def _point(result: Mapping[str, Any], density: float, seed: int) -> dict[str, Any]:
    es = result["early_stop"]
    return {"seed": seed, "density": density, "es_step": es["step"], "es_test": es["test_accuracy"]}


def tickets(cfg: IMPConfig, confirm_rounds: Sequence[int], ctx: Context) -> dict[str, Any]:
    """The IMP run of ``cfg`` (in a temporary workspace) and the confirmations of its tickets of
    ``confirm_rounds``: per round, each trajectory's ticket (its round's numbers) and its reinit control."""
    t0 = time.monotonic()
    seeds = list(cfg.imp.init_seeds)
    if not cfg.data_dir and ctx.data_dir:
        cfg = dataclasses.replace(cfg, data_dir=ctx.data_dir)
    local = cfg.evaluator == "local"
    with tempfile.TemporaryDirectory() as tmp:
        ws = Path(tmp) / "workspace"
        ctx.progress(f"[conv] IMP of {cfg.model}: {len(seeds)} trajectories x {cfg.imp.rounds + 1} rounds")
        with ls.imp(cfg, ws, local=local, progress=lambda r: ctx.progress(f"  {r.line()}")) as run:
            run_id = run.id
            rounds = {(r.trajectory, r.round): r for r in run.imp_rounds()}
            density = {i.id: i.density for i in run.individuals()}
        chosen = [rounds[(s, k)].individual_id for k in confirm_rounds for s in seeds]
        ctx.progress(f"[conv] confirming {len(chosen)} tickets from init seed {REINIT_SEED}")
        ls.confirm(ws, run_id, ids=chosen, reinit_seeds=[REINIT_SEED], local=local)
        with ls.open_run(ws, run_id) as again:
            confirmed = {(c.individual_id, c.init): c.result.as_dict() for c in again.confirmations()}
    points: dict[str, dict[str, list[dict[str, Any]]]] = {"ticket": {}, "reinit": {}}
    for (seed, k), rec in sorted(rounds.items(), key=lambda item: (item[0][1], seeds.index(item[0][0]))):
        d = density[rec.individual_id]
        points["ticket"].setdefault(str(k), []).append(_point(rec.result, d, seed))
        if k in confirm_rounds:
            points["reinit"].setdefault(str(k), []).append(
                _point(confirmed[(rec.individual_id, "reinit")], d, seed)
            )
    t = cfg.training
    return {
        "model": cfg.model,
        "dataset": cfg.dataset,
        "seeds": seeds,
        "imp": asdict(cfg.imp),
        "training": asdict(t),
        "rounds": list(range(cfg.imp.rounds + 1)),
        "confirm_rounds": list(confirm_rounds),
        "points": points,
        "elapsed_s": time.monotonic() - t0,
    }  # fmt: skip


# ---- rendering ----------------------------------------------------------------------------------------
def _collapse_table(results: Mapping[str, Any]) -> str:
    rows = []
    for res in results["collapse"]:
        for pruner in results["settings"]["pruners"]:
            rows.append(
                (res["label"], pruner, critical_cell(res, pruner, True), critical_cell(res, pruner, False),
                 f"{res['rho_max']:.6g} (10^{math.log10(res['rho_max']):.2f})")
            )  # fmt: skip
    return markdown_table(["model", "pruner", "ρ_cr with biases", "ρ_cr bias-free", "ρ_max"], rows)


def _stability_table(results: Mapping[str, Any]) -> str:
    rows = []
    for st in results["stability"]:
        n = len(st["seeds"])
        for r in st["rows"]:
            rows.append(
                (st["label"], f"{r['compression']:g}", pm(r["effective_density"], 4), f"{r['collapsed']}/{n}",
                 f"{r['classes']}/{n}", pm(r["jaccard"]), f"{r['chance_jaccard']['mean']:.3f}",
                 pm(r["excess_overlap"]), pm(r["aligned_jaccard"]), pm(r["aligned_chance_jaccard"]))
            )  # fmt: skip
    header = ["model", "ρ", "effective density", "collapsed", "classes", "J raw", "J chance", "excess (κ)",
              "J aligned", "J aligned, chance"]  # fmt: skip
    return markdown_table(header, rows)


def _tickets_table(tk: Mapping[str, Any]) -> str:
    rows = []
    for k in tk["rounds"]:
        acc, it = round_stat(tk, "ticket", k, "es_test"), round_stat(tk, "ticket", k, "es_step")
        re_acc, re_it = round_stat(tk, "reinit", k, "es_test"), round_stat(tk, "reinit", k, "es_step")
        rows.append(
            (f"{round_percent(tk, k):.1f}", str(k), f"{pm(acc, 4)} @ {it['mean']:.0f}",
             "—" if re_acc is None else f"{pm(re_acc, 4)} @ {re_it['mean']:.0f}")
        )  # fmt: skip
    header = ["% weights", "round", "ticket (own init): test acc @ early-stop iter",
              f"reinit (seed {REINIT_SEED}): test acc @ early-stop iter"]  # fmt: skip
    return markdown_table(header, rows)


# What each ticket is compared with (ticket − it), paired by init.
VERSUS = {"dense": "the dense network (round 0)", "reinit": f"the same mask, reinit (seed {REINIT_SEED})"}


def margin(results: Mapping[str, Any]) -> tuple[float, bool]:
    """The equivalence margin in points, and whether the run stored it with its settings (declared before it
    ran) or it is the current settings', declared after the run that ``results`` holds."""
    if "equivalence_margin" in results["settings"]:
        return float(results["settings"]["equivalence_margin"]), True
    return SETTINGS[results.get("settings_name", "small")].equivalence_margin, False


def _by_seed(tk: Mapping[str, Any], method: str, k: int) -> dict[int, float]:
    return {p["seed"]: float(p["es_test"]) for p in tk["points"][method].get(str(k), [])}


def compared(tk: Mapping[str, Any]) -> dict[tuple[str, int], tuple[dict[int, float], dict[int, float]]]:
    """The tickets' comparisons as (ticket, other) test accuracies at early stop by init: every sparse round
    against the dense network (``("dense", k)``), every confirmed round against its reinit (``("reinit", k)``)."""
    out = {("dense", k): (_by_seed(tk, "ticket", k), _by_seed(tk, "ticket", 0)) for k in tk["rounds"][1:]}
    out |= {
        ("reinit", k): (_by_seed(tk, "ticket", k), _by_seed(tk, "reinit", k)) for k in tk["confirm_rounds"]
    }
    return out


def verdicts(results: Mapping[str, Any]) -> dict[tuple[str, int], Verdict]:
    """``compared``'s comparisons decided as one family, in points (``common.decide``)."""
    return common.decide(compared(results["tickets"]), margin(results)[0])


def screen(tk: Mapping[str, Any], other: str, k: int) -> str:
    """What the report's earlier 2-SE screen (Welch, unpaired) said of the ticket of round ``k`` against
    ``other``: 'better', 'worse' or 'indistinguishable'."""
    a = round_stat(tk, "ticket", k, "es_test")
    b = round_stat(tk, "ticket", 0, "es_test") if other == "dense" else round_stat(tk, "reinit", k, "es_test")
    if not common.differs(a, b):
        return "indistinguishable"
    return "better" if a["mean"] > b["mean"] else "worse"


def verdict_table(tk: Mapping[str, Any], decided: Mapping[tuple[str, int], Verdict]) -> str:
    rows = [
        [
            f"{round_percent(tk, k):.1f}",
            VERSUS[other],
            v.interval(),
            common.test_cell(v),
            common.verdict_cell(v, screen(tk, other, k)),
        ]
        for (other, k), v in decided.items()
    ]
    return markdown_table(
        ["% weights", "ticket against", "ticket − it, points [95% CI]", "paired test", "verdict"], rows
    )


def tickets_figure(tk: Mapping[str, Any]):  # noqa: ANN201 - matplotlib Figure
    """Test accuracy at early stop against weights remaining: tickets and their reinit controls."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.2), dpi=110, layout="constrained")
    ax = fig.subplots()
    for method, style, label in (
        ("ticket", "o-", "ticket (own init)"),
        ("reinit", "s--", "same mask, reinit"),
    ):
        ks = [k for k in tk["rounds"] if tk["points"][method].get(str(k))]
        stats = [round_stat(tk, method, k, "es_test") for k in ks]
        ax.errorbar([round_percent(tk, k) for k in ks], [s["mean"] for s in stats], yerr=[s["std"] for s in stats],
                    fmt=style, color="#1f4e9c" if method == "ticket" else "#d62728", label=label, capsize=3, ms=4)  # fmt: skip
    ax.set_xscale("log")
    ax.invert_xaxis()
    ax.set_xlabel("percent of weights remaining (log)")
    ax.set_ylabel("test accuracy at early stop (mean ± std)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8.5)
    ax.set_title(f"IMP tickets of {tk['model']} on {tk['dataset']}, {len(tk['seeds'])} inits")
    return fig


def training_runs(tk: Mapping[str, Any]) -> int:
    """The tickets part's trainings: every trajectory's rounds, then a reinit of each confirmed ticket."""
    return len(tk["seeds"]) * (len(tk["rounds"]) + len(tk["confirm_rounds"]))


def render(results: Mapping[str, Any], ctx: Context) -> Rendered:
    ctx.figures.mkdir(parents=True, exist_ok=True)
    coll_path, tk_path = ctx.figures / "conv_collapse.png", ctx.figures / "conv_tickets.png"
    collapse_figure({"models": results["collapse"]}).savefig(coll_path)
    tk = results["tickets"]
    tickets_figure(tk).savefig(tk_path)
    i, t = tk["imp"], tk["training"]
    grids = "; ".join(
        f"{r['label']} (`{r['model']}`, {sum(r['layer_sizes'].values()):,} prunable weights in "
        f"{len(r['layer_sizes'])} layers): step {r['step']:g}, seed{'s' if len(r['seeds']) > 1 else ''} "
        f"{', '.join(map(str, r['seeds']))}, "
        + " and ".join("with biases" if b else "bias-free" for b in r["biases"])
        for r in results["collapse"]
    )
    stab = "; ".join(f"{st['label']}: {len(st['seeds'])} inits" for st in results["stability"])
    decided = verdicts(results)
    body = "\n".join(
        [
            "**Collapse.** ρ = 10^x for x on a grid ("
            + grids
            + "), plus ρ_max = |θ|/L itself (one weight per "
            "layer: one kernel entry per convolution, chaining channels, and fc weights in the live channel's "
            "block). A mask is collapsed when some layer has no weight on an input→output path, a channel "
            "being dead without a live kernel in or out. SynFlow 100 iterations, the others one-shot, all "
            "global; ρ_cr is mean ± std of log10 over seeds.",
            "",
            _collapse_table(results),
            "",
            f"![layer collapse on convnets]({ctx.figure_link(coll_path)})",
            "",
            f"**Stability across inits** (SynFlow, with biases; {stab}): the masks of every pair of inits, as "
            "in section 1, with hidden channels and neurons as the units alignment relabels and isomorphism "
            "classes treat as interchangeable (a kernel's pattern is an edge label).",
            "",
            _stability_table(results),
            "",
            f"**Tickets and their reinit controls**: `lotterysearch imp experiments/configs/"
            f"{results['settings']['imp_config']}` on `{tk['model']}` / {tk['dataset']}: {len(tk['seeds'])} "
            f"inits, {i['scope']} pruning of {100 * i['rate']:g}% per round ({100 * i['output_rate']:g}% for "
            f"the output layer, the CNN's fully connected layer), rewinding to the init, {t['optimizer']} lr "
            f"{t['lr']:g}, batch {t['batch_size']}, {t['steps']} iterations per round with evaluation every "
            f"{t['eval_every']} on the validation split, test accuracy at the early-stopping iteration (lowest "
            f"validation loss). Tickets of rounds {', '.join(map(str, tk['confirm_rounds']))} confirmed "
            f"(`lotterysearch confirm`) from init seed {REINIT_SEED} (from its own init a ticket's confirmation "
            f"is its round); {training_runs(tk)} trainings in all. Conv-2 tickets are not run at either setting "
            "(Conv-2 trains too slowly on 2 CPU cores).",
            "",
            _tickets_table(tk),
            "",
            f"![tickets and reinit controls]({ctx.figure_link(tk_path)})",
            "",
            common.method_text(
                decided,
                *margin(results),
                "`experiments/conv.py` (`ConvSettings.equivalence_margin`)",
                screen="a difference beyond 2 Welch standard errors, unpaired",
            ),
            "",
            verdict_table(tk, decided),
        ]
    )
    return Rendered(
        body=body,
        answer=collapse_answer(results),
        also={1: stability_answer(results), 5: tickets_answer(results)},
    )


def collapse_answer(results: Mapping[str, Any]) -> str:
    """Question 4 on convnets, from the saved numbers."""
    parts = []
    for res in results["collapse"]:
        rho_max = res["rho_max"]
        crit = {(w["pruner"], w["bias"]): [] for w in res["sweeps"]}
        for w in res["sweeps"]:
            crit[(w["pruner"], w["bias"])].append(w["critical"])
        biases = res["biases"]
        reach = {b: all(math.isclose(v, rho_max) for v in crit[("synflow", b)]) for b in biases}
        others = [p for p in results["settings"]["pruners"] if p != "synflow"]
        b0 = biases[0]  # the other pruners are compared at the first setting measured
        gap = log_stats(crit[("synflow", b0)])[0] - max(log_stats(crit[(p, b0)])[0] for p in others)
        with_b = {True: "with biases", False: "bias-free"}
        if all(reach.values()):
            verdict = "SynFlow reaches ρ_max without collapse " + " and ".join(with_b[b] for b in biases)
        elif reach.get(False):
            verdict = "SynFlow reaches ρ_max without collapse bias-free but not with biases"
        else:
            verdict = "SynFlow does not reach ρ_max without collapse " + " or ".join(
                with_b[b] for b in biases
            )
        cells = " and ".join(f"{critical_cell(res, 'synflow', b)} {with_b[b]}" for b in biases)
        parts.append(
            f"{res['label']} (ρ_max = 10^{math.log10(rho_max):.2f}): {verdict} (ρ_cr {cells}); "
            + ", ".join(f"{p} up to {critical_cell(res, p, b0)}" for p in others)
            + f" {with_b[b0]}, so SynFlow "
            + (f"survives {gap:.2f} further in log10 ρ than the best other pruner" if gap > 0 else
               "does not survive longer than every other pruner")
            + "."
        )  # fmt: skip
    return "**On convolutional networks**: " + " ".join(parts)


def _span(values: Sequence[float], spec: str) -> str:
    lo, hi = format(min(values), spec), format(max(values), spec)
    return lo if lo == hi else f"{lo} to {hi}"


def stability_answer(results: Mapping[str, Any]) -> str:
    """Question 1 on convnets: do SynFlow's masks of different inits coincide? Compressions where every mask
    collapsed are named apart: their effective subnetworks are all empty, hence one class."""
    parts, distinct = [], True
    for st in results["stability"]:
        n = len(st["seeds"])
        live = [r for r in st["rows"] if r["collapsed"] == 0]
        dead = [r for r in st["rows"] if r["collapsed"] == n]
        some = [r for r in st["rows"] if 0 < r["collapsed"] < n]
        rhos = lambda rows: ", ".join(format(r["compression"], "g") for r in rows)  # noqa: E731
        text = f"{st['label']}"
        if live:
            kappas = [r["excess_overlap"]["mean"] for r in live]
            gain = [r["aligned_jaccard"]["mean"] - r["aligned_chance_jaccard"]["mean"] for r in live]
            classes = [r["classes"] for r in live]
            distinct &= all(c == n for c in classes)
            text += (
                f" at ρ = {rhos(live)}: raw J against chance κ = {_span(kappas, '.3f')}, aligned J above aligned "
                f"chance by {_span(gain, '+.2f')}, {_span(classes, 'd')} isomorphism classes among {n} inits"
            )
        if some:
            text += f"; at ρ = {rhos(some)} some of the {n} masks collapsed"
        if dead:
            text += f"; at ρ = {rhos(dead)} every mask collapsed (no input→output path, so one empty class)"
        parts.append(text)
    verdict = (
        "a different network for every init wherever it does not collapse, as on the MLPs"
        if distinct
        else "not always a different network for every init"
    )
    return f"**On convolutional networks**, SynFlow gives {verdict}: " + "; ".join(parts) + "."


def tickets_answer(results: Mapping[str, Any]) -> str:
    """Question 5 on the 1-D CNN: do tickets beat their reinit controls, and match the dense network?"""
    tk = results["tickets"]
    decided = verdicts(results)
    m, _ = margin(results)
    dense = round_stat(tk, "ticket", 0, "es_test")
    pct = lambda ks: ", ".join(f"{round_percent(tk, k):.1f}%" for k in ks) or "none"  # noqa: E731

    def said(other: str, ks: Sequence[int]) -> str:
        at = {f"{round_percent(tk, k):.1f}%": decided[(other, k)] for k in ks}
        diffs = ", ".join(f"{v.interval()} at {where}" for where, v in at.items())
        return f"{common.grouped(at)} (in points: {diffs})"

    sparse = tk["rounds"][1:]
    matching = [k for k in sparse if decided[("dense", k)].kind in ("better", "equivalent")]
    n = len(tk["seeds"])
    moved = common.changes(
        [
            (f"the ticket against {VERSUS[o]}", f"{round_percent(tk, k):.1f}%", v, screen(tk, o, k))
            for (o, k), v in decided.items()
        ]
    )
    return (
        f"**On the 1-D CNN / MNIST-1D** ({n} inits, {tk['training']['steps']} iterations per round; paired by init, "
        f"Holm over the {next(iter(decided.values())).family_size} tests of the tickets, equivalence within "
        f"±{m:.2f} points by TOST): against their reinit controls the tickets are {said('reinit', tk['confirm_rounds'])}. "
        f"Against the dense network (test accuracy {pm(dense, 4)}) they are {said('dense', sparse)}: winning tickets "
        "in Frankle & Carbin's sense (matching the dense network within the margin, or beating it) are shown here "
        + (f"at {pct(matching)} of the weights" if matching else "at no density")
        + f" with {n} inits at {tk['training']['steps']} iterations per round. Conv-2 tickets were not run."
        + (f" {moved}" if moved else "")
    )


def describe(s: ConvSettings) -> str:
    """The settings in one line, for the report's settings table."""
    cases = "; ".join(
        f"`{c.model}`/{c.dataset}: collapse {len(c.collapse_seeds)} seed(s), grid step {c.step:g}, "
        f"{' and '.join('with biases' if b else 'bias-free' for b in c.biases)}; SynFlow "
        f"stability {len(c.stability_seeds)} inits at ρ {', '.join(format(r, 'g') for r in c.stability_compressions)}"
        for c in s.cases
    )
    return f"{cases}; tickets: [{s.imp_config}](configs/{s.imp_config}), rounds {', '.join(map(str, s.confirm_rounds))} confirmed"


SECTION = Section(
    "conv", "Convolutional networks: collapse, stability across inits and tickets", 4, run, render
)
