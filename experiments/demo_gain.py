"""Does the README's demo search improve on its seeds, by more than the fitness noise?

The demo (``experiments/configs/demo.toml``: NSGA-II on MNIST-1D's ``mlp:40-100-100-10``, seeded by SynFlow
at ρ = 3, 10, 30, 100 from 4 inits) is run from several GA seeds in three variants: its classic operators
(move and grow/prune mutations, layer and neuron crossover); the structured ones added to them (layer-
density and neuron grow/prune mutations, layer-density crossover: they move what SynFlow's masks differ in,
per-layer density and live neurons); and those with the proxy section's fitness (200 steps averaged over
two inits with common random numbers, where the demo trains 115 steps from one). For each run and each seed compression ρ the best mask of density ≤ 1/ρ
by fitness is taken twice: among the seeds (generation 0) and among everything the search evaluated.

The fitness is a validation accuracy after a short training from one init (seed 0), and the search's best
is the maximum over hundreds of such draws, so its fitness gain is inflated by selection (the winner's
curse). Both masks are therefore retrained with the same short protocol from fresh inits and scored on the
test split; the gain is the paired difference (same GA seed, same fresh init), averaged over the fresh inits
of each GA seed: the GA seed, which chose both masks, is the replicate. The search "improves on its seeds" at
d when the paired t-test over GA seeds says so after Holm's correction over every comparison of the section,
and is level with them when TOST puts the gain within the declared margin (``lotterysearch.verdicts``). The
fitness noise, the spread of one mask's accuracy over fresh inits (the std of a single fitness evaluation),
is shown beside it.
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import lotterysearch as ls
from experiments import common
from experiments.common import ROOT, Context, Rendered, Section
from experiments.lth import train_mask
from lotterysearch.core.data import load_dataset
from lotterysearch.execution import backend
from lotterysearch.settings import SearchConfig, load_config
from lotterysearch.stats import markdown_table, mean_std, pm
from lotterysearch.verdicts import Verdict, mean_interval

DEMO = ROOT / "configs" / "demo.toml"
STRUCTURED = {
    "mutations": ("move", "grow_prune", "layer_density", "neuron_grow", "neuron_prune"),
    "crossovers": ("layer", "neuron", "layer_density"),
}
# Each variant: the [ga] operators and the [fitness] fields it changes in the demo's config.
OPERATORS: dict[str, dict[str, dict[str, Any]]] = {
    "classic": {
        "ga": {"mutations": ("move", "grow_prune"), "crossovers": ("layer", "neuron")},
        "fitness": {},
    },
    "structured": {"ga": STRUCTURED, "fitness": {}},
    # the proxy section's choice: 200 steps averaged over two inits (common random numbers)
    "structured_proxy": {"ga": STRUCTURED, "fitness": {"steps": 200, "init_seeds": (0, 1)}},
}
LABELS = {
    "classic": "the demo's operators (move, grow/prune; layer, neuron crossover)",
    "structured": "plus layer-density and neuron grow/prune operators",
    "structured_proxy": "those, with the proxy's fitness (200 steps, 2 inits)",
}


@dataclass(frozen=True)
class DemoSettings:
    ga_seeds: tuple[int, ...]  # the config's ``seed``: the GA's random numbers and the validation split
    retrain_seeds: tuple[int, ...]  # fresh inits for the test retraining (none is the fitness's seed 0)
    compressions: tuple[float, ...] = (10, 30, 100)  # fixed densities 1/ρ: the seeds' own (SynFlow at ρ)
    generations: int | None = None  # None: the config's
    evaluator: str = "ray"  # or "local"
    config: Path = DEMO
    variants: tuple[str, ...] = tuple(OPERATORS)
    # A gain within this many points of zero counts as none: the margin of every equivalence test (TOST) of the
    # section, as section 1's on the same data. Declared before the next run, which stores it with its
    # results; the saved run was made before it was declared.
    equivalence_margin: float = 0.5


SETTINGS = {
    "small": DemoSettings(ga_seeds=(0, 1, 2), retrain_seeds=tuple(range(100, 105))),
    "large": DemoSettings(ga_seeds=tuple(range(5)), retrain_seeds=tuple(range(100, 110)), generations=32),
}


def describe(s: DemoSettings) -> str:
    """The settings in one table cell."""
    gens = f"{s.generations or load_config(s.config).ga.generations} generations"
    return (
        f"[{s.config.name}](configs/{s.config.name}), {gens}: {len(s.ga_seeds)} GA seeds × {len(s.variants)} "
        f"variants; {len(s.retrain_seeds)} fresh inits for the test retraining"
    )


def demo_config(s: DemoSettings, operators: str, seed: int, workspace: Path) -> SearchConfig:
    """The demo's config with one GA seed and one variant's operators and fitness."""
    cfg = load_config(s.config)
    v = OPERATORS[operators]
    ga = dataclasses.replace(cfg.ga, generations=s.generations or cfg.ga.generations, **v["ga"])
    fitness = dataclasses.replace(cfg.fitness, **v["fitness"])
    name = f"demo-{operators.replace('_', '-')}"
    return dataclasses.replace(cfg, seed=seed, ga=ga, fitness=fitness, workspace=str(workspace), name=name)


def best_at(individuals: Sequence[ls.Individual], compression: float) -> ls.Individual | None:
    """The individual of highest fitness among those of density ≤ 1/ρ + 1e-4 (SynFlow keeps a rounded count,
    so its mask at ρ can sit a hair above 1/ρ) at full fidelity, the first of equals in id order."""
    limit = 1 / compression + 1e-4
    kept = [i for i in individuals if i.density <= limit and i.fidelity >= 1.0]
    return max(kept, key=lambda i: (i.accuracy, -i.id), default=None)


def retrain(data, spec: str, seed: int, packed: bytes, shapes: Mapping, training, mode: str) -> float:  # noqa: ANN001
    """A job: the fitness protocol from a fresh init ``seed``, scored on the test split."""
    return float(train_mask(data, spec, seed, packed, shapes, training, mode)["test_accuracy"])


def measure(s: DemoSettings, ctx: Context) -> dict[str, Any]:
    runs: list[dict[str, Any]] = []
    jobs = None
    with tempfile.TemporaryDirectory() as tmp:
        for operators in s.variants:
            for seed in s.ga_seeds:
                cfg = demo_config(s, operators, seed, Path(tmp) / "ws")
                ctx.progress(
                    f"[demo] {operators} operators, GA seed {seed}: {cfg.ga.generations} generations"
                )
                with ls.search(cfg, local=s.evaluator == "local") as run:
                    history = run.history()
                    everyone = run.individuals()
                seeds = [i for i in everyone if i.generation == 0]
                if jobs is None:
                    data = load_dataset(cfg.dataset, cfg.seed, data_dir=cfg.data_dir or None)
                    jobs = backend.jobs(retrain, data, local=backend.runs_locally(s.evaluator))
                training, model, mode = cfg.fitness.training(), cfg.model, cfg.mode
                row: dict[str, Any] = {
                    "operators": operators,
                    "seed": seed,
                    "fitness_steps": cfg.fitness.steps,
                    "fitness_inits": len(cfg.fitness.init_seeds),
                    "hypervolume": [g.hypervolume for g in history],
                    "evaluated": sum(i.evaluated for i in everyone),
                    "individuals": len(everyone),
                    "best": {},
                }
                for d in s.compressions:
                    pair = {"seeds": best_at(seeds, d), "search": best_at(everyone, d)}
                    row["best"][f"{d:g}"] = {
                        k: None
                        if ind is None
                        else {"id": ind.id, "fitness": ind.accuracy, "density": ind.density, "test": {}}
                        for k, ind in pair.items()
                    }
                    for k, ind in pair.items():
                        for r in s.retrain_seeds if ind is not None else ():
                            key = (len(runs), f"{d:g}", k, r)
                            jobs.submit(key, model, r, ind.packed, dict(ind.shapes or {}), training, mode)
                runs.append(row)
        ctx.progress(f"[demo] retraining {jobs.pending()} masks from fresh inits on the test split")
        while jobs.pending():
            (j, d, k, r), acc = jobs.next_done()
            runs[j]["best"][d][k]["test"][str(r)] = acc
        jobs.close()
    return {
        "config": s.config.name,
        "generations": s.generations or load_config(s.config).ga.generations,
        "ga_seeds": list(s.ga_seeds),
        "retrain_seeds": list(s.retrain_seeds),
        "compressions": list(s.compressions),
        "equivalence_margin": s.equivalence_margin,
        "runs": runs,
    }


def run(ctx: Context) -> dict[str, Any]:
    return measure(SETTINGS[ctx.settings], ctx)


# ---- analysis of saved results --------------------------------------------------------------------------
def gains(res: Mapping[str, Any], operators: str, d: float) -> dict[str, Any]:
    """At density ≤ 1/ρ (``d`` = ρ) for one variant: the paired test gains (search's best − seeds' best, per GA
    seed and fresh init), the fitness gain per GA seed, and the fitness noise: the std over fresh inits of one
    mask's accuracy, averaged over the masks, over √k for a fitness averaged over k inits."""
    paired, fitness, noise, seeds_acc, search_acc = [], [], [], [], []
    for row in res["runs"]:
        if row["operators"] != operators:
            continue
        pair = row["best"][f"{d:g}"]
        if pair["seeds"] is None or pair["search"] is None:
            continue
        a, b = pair["search"], pair["seeds"]
        fitness.append(a["fitness"] - b["fitness"])
        both = sorted(set(a["test"]) & set(b["test"]), key=int)
        paired += [a["test"][r] - b["test"][r] for r in both]
        seeds_acc += [b["test"][r] for r in both]
        search_acc += [a["test"][r] for r in both]
        k = row.get("fitness_inits", 1)
        noise += [
            float(np.std(list(m["test"].values()), ddof=1)) / math.sqrt(k)
            for m in (a, b)
            if len(m["test"]) > 1
        ]
    g = mean_std(paired)
    se = g["std"] / math.sqrt(g["n"]) if g["n"] > 1 else math.nan
    sigma = float(np.mean(noise)) if noise else math.nan
    return {
        "gain": g,
        "se": se,
        "fitness_gain": mean_std(fitness),
        "noise": sigma,
        "seeds": mean_std(seeds_acc),
        "search": mean_std(search_acc),
        "improves": bool(g["n"] > 1 and g["mean"] > 2 * se and g["mean"] > sigma),
    }


def margin(res: Mapping[str, Any]) -> tuple[float, bool]:
    """The equivalence margin in points, and whether the run stored it (declared before it ran) or it is the
    current settings', declared after the run that ``res`` holds."""
    if "equivalence_margin" in res:
        return float(res["equivalence_margin"]), True
    return SETTINGS[res.get("settings_name", "small")].equivalence_margin, False


def compared(res: Mapping[str, Any]) -> dict[tuple[str, float], tuple[dict[int, float], dict[int, float]]]:
    """Every comparison of the section, keyed (variant, ρ): the search's best and the seeds' best, test accuracy
    by GA seed, each the mean over the fresh inits both were retrained from."""
    out: dict[tuple[str, float], tuple[dict[int, float], dict[int, float]]] = {}
    for operators in variants(res):
        for rho in res["compressions"]:
            search, seeds = {}, {}
            for row in res["runs"]:
                pair = row["best"][f"{rho:g}"]
                if row["operators"] != operators or pair["seeds"] is None or pair["search"] is None:
                    continue
                both = set(pair["search"]["test"]) & set(pair["seeds"]["test"])
                if both:
                    search[row["seed"]] = float(np.mean([pair["search"]["test"][r] for r in both]))
                    seeds[row["seed"]] = float(np.mean([pair["seeds"]["test"][r] for r in both]))
            out[(operators, rho)] = (search, seeds)
    return out


def verdicts(res: Mapping[str, Any]) -> dict[tuple[str, float], Verdict]:
    """``compared``'s comparisons decided as one family, in points (``common.decide``)."""
    return common.decide(compared(res), margin(res)[0])


def same_mask(res: Mapping[str, Any], operators: str, rho: float) -> tuple[int, int]:
    """In how many GA seeds (of how many) the search's best at 1/ρ is the seeds' best itself."""
    pairs = [r["best"][f"{rho:g}"] for r in res["runs"] if r["operators"] == operators]
    pairs = [p for p in pairs if p["seeds"] is not None and p["search"] is not None]
    return sum(p["search"].get("id") == p["seeds"].get("id") is not None for p in pairs), len(pairs)


def changed(v: Verdict, g: Mapping[str, Any]) -> bool:
    """Whether the test's verdict differs from the earlier 2-SE screen's "improves?" (a gain beyond 2 SE over
    GA seeds × inits and beyond the fitness noise): improving is now "better", nothing else."""
    return (v.kind == "better") != g["improves"]


def variants(res: Mapping[str, Any]) -> dict[str, str]:
    """The variants the results hold, in ``LABELS`` order, with their labels."""
    held = {r["operators"] for r in res["runs"]}
    return {k: v for k, v in LABELS.items() if k in held}


def hypervolumes(res: Mapping[str, Any], operators: str) -> dict[str, Any]:
    rows = [r["hypervolume"] for r in res["runs"] if r["operators"] == operators]
    first = mean_std(h[0] for h in rows)
    last = mean_std(h[-1] for h in rows)
    delta = mean_std(h[-1] - h[0] for h in rows)
    return {"first": first, "last": last, "delta": delta, "curves": rows}


def figure(res: Mapping[str, Any]):  # noqa: ANN201 - matplotlib Figure
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.4))
    for k, (operators, label) in enumerate(variants(res).items()):
        curves = np.asarray(hypervolumes(res, operators)["curves"], dtype=float)
        if curves.size == 0:
            continue
        gens = np.arange(curves.shape[1])
        mean = curves.mean(0)
        ax.plot(gens, mean, f"C{k}-", label=f"{label}, mean of {len(curves)} GA seeds")
        ax.fill_between(gens, curves.min(0), curves.max(0), color=f"C{k}", alpha=0.15, lw=0)
    ax.set_xlabel("generation")
    ax.set_ylabel("hypervolume (validation fitness)")
    ax.set_title("the demo search: hypervolume per generation (band: min to max over GA seeds)")
    ax.title.set_fontsize(9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def render(res: Mapping[str, Any], ctx: Context) -> Rendered:
    ctx.figures.mkdir(parents=True, exist_ok=True)
    path = ctx.figures / "demo_gain.png"
    figure(res).savefig(path, dpi=120)
    n_seeds, n_inits = len(res["ga_seeds"]), len(res["retrain_seeds"])
    decided = verdicts(res)
    rows, screened = [], {}
    for operators, label in variants(res).items():
        for rho in res["compressions"]:
            g = screened[(operators, rho)] = gains(res, operators, rho)
            v = decided[(operators, rho)]
            same, n = same_mask(res, operators, rho)
            was = (
                f" (was {'an improvement' if g['improves'] else 'no improvement'} by {common.SCREEN})"
                if changed(v, g)
                else ""
            )
            rows.append(
                [
                    label,
                    f"1/{rho:g}",
                    pm(g["seeds"]),
                    pm(g["search"]),
                    f"{same}/{n}",
                    v.interval(),
                    common.test_cell(v),
                    f"{100 * g['noise']:.2f}",
                    f"{100 * g['fitness_gain']['mean']:+.2f}",
                    f"{v}{was}",
                ]
            )
        hv = hypervolumes(res, operators)
        mean, lo, hi = mean_interval([100 * (h[-1] - h[0]) for h in hv["curves"]])
        rows.append(
            [
                label,
                "hypervolume (validation)",
                pm(hv["first"], 4),
                pm(hv["last"], 4),
                "",
                f"{mean:+.2f} [{lo:+.2f}, {hi:+.2f}]",
                "not tested (selection-biased)",
                "",
                "",
                "",
            ]
        )
    table = markdown_table(
        [
            "variant",
            "density ≤",
            "seeds' best (generation 0), test",
            "search's best, test",
            "same mask (GA seeds)",
            "gain, points [95% CI]",
            "paired test (over GA seeds)",
            "fitness noise σ, points",
            "fitness gain (biased), points",
            "verdict",
        ],
        rows,
    )
    how = common.method_text(
        decided,
        *margin(res),
        "`experiments/demo_gain.py` (`DemoSettings.equivalence_margin`)",
        screen="a gain beyond 2 standard errors over GA seeds × inits and beyond the fitness noise",
        unit="GA seed",
    )
    body = (
        f"The README's demo (`experiments/configs/{res['config']}`, {res['generations']} generations) from "
        f"{n_seeds} GA seeds in each variant. At each seed density 1/ρ, the best mask by fitness among "
        "the seeds (generation 0) and among everything the search evaluated are both retrained with the "
        f"variant's fitness training from {n_inits} fresh inits and scored on test (mean ± std over GA seeds × inits). "
        "Gain: search's best − seeds' best, the mean over the fresh inits of each GA seed, then over GA seeds, "
        "in points with its 95% interval; *same mask*: in how many GA seeds the search's best is the seeds' best "
        "itself (a gain of exactly 0). Fitness noise σ: the std of one mask's accuracy over fresh inits (over √2 "
        "for a fitness averaged over 2 inits), i.e. the noise of one fitness evaluation; fitness gain: what the "
        "search itself saw, inflated by taking the maximum of many noisy evaluations. The hypervolume rows are the "
        "validation fitness's at generation 0 and at the end (selection-biased in the same way), and their "
        f"difference over GA seeds.\n\n{table}\n\n{how}\n\n![hypervolume per generation]({ctx.figure_link(path)})"
    )
    return Rendered(body=body, answer=demo_answer(res, decided, screened))


def demo_answer(
    res: Mapping[str, Any],
    decided: Mapping[tuple[str, float], Verdict],
    screened: Mapping[tuple[str, float], Mapping[str, Any]],
) -> str:
    """The written answer: per operator set, where the retrained best is shown better than the seeds' best."""
    parts, wins = [], {}
    m, _ = margin(res)
    for operators, label in variants(res).items():
        at = {f"1/{r:g}": decided[(operators, r)] for r in res["compressions"]}
        wins[operators] = [r for r in res["compressions"] if decided[(operators, r)].kind == "better"]
        detail = ", ".join(f"{v.interval()} at {where}" for where, v in at.items())
        same = [f"1/{r:g}" for r in res["compressions"] if (k := same_mask(res, operators, r))[0] == k[1] > 0]
        noise = max(screened[(operators, r)]["noise"] for r in res["compressions"])
        parts.append(
            f"{label}: {common.grouped(at)} (test gain in points {detail}"
            + (
                f"; at {common.and_list(same)} its best is the seeds' best itself in every GA seed"
                if same
                else ""
            )
            + f"; fitness noise σ ≤ {100 * noise:.2f} points)"
        )
    n = len(res["compressions"])
    demo = len(wins["classic"]) if "classic" in wins else 0
    if demo == n:
        head = "**Yes: the demo search improves on its seeds at every seed density.**"
    elif demo:
        head = f"**Partly: the demo search improves on its seeds at {demo} of {n} seed densities.**"
    else:
        head = "**Not shown: the demo search is not shown to improve on its seeds at any seed density.**"
        better = [variants(res)[o] for o in wins if wins[o]]
        if better:
            head = (
                "**Not as configured: the demo search is not shown to improve on its seeds; "
                f"{' and '.join(better)} is.**"
            )
    k = len(res["ga_seeds"])
    family = next(iter(decided.values())).family_size
    text = (
        f"{head} Its best masks, retrained from fresh inits and scored on test, against its SynFlow seeds' best "
        f"at the same density ({k} GA seeds, the replicate; paired t-tests with {k - 1} degrees of freedom, Holm "
        f"over the section's {family} tests, equivalence within ±{m:.2f} points by TOST): "
        + "; ".join(parts)
        + "."
    )
    pairs = [
        (screened[(o, r)]["fitness_gain"]["mean"], screened[(o, r)]["noise"])
        for o in variants(res)
        for r in res["compressions"]
    ]
    if not any(wins.values()) and all(seen < sigma for seen, sigma in pairs):
        text += (
            " Why: at every density the gain the search sees in its own fitness "
            f"({100 * min(p[0] for p in pairs):+.2f} to {100 * max(p[0] for p in pairs):+.2f} points) is smaller than "
            "the noise of one fitness evaluation there, so selection keeps the masks whose fitness evaluation drew "
            "well (the winner's curse), and retrained from fresh inits that luck is gone."
        )
    else:
        text += (
            " What the search reports in its own fitness is larger: the winner's curse of taking the best of "
            "hundreds of noisy evaluations."
        )
    moved = [
        (variants(res)[o], f"1/{r:g}", decided[(o, r)], screened[(o, r)]["improves"])
        for o in variants(res)
        for r in res["compressions"]
        if changed(decided[(o, r)], screened[(o, r)])
    ]
    if moved:
        text += (
            f" Changed from {common.SCREEN}: "
            + "; ".join(
                f"*{label}* at {where} was {'an improvement' if improved else 'no improvement'} (now {v})"
                for label, where, v, improved in moved
            )
            + "."
        )
    return text


SECTION = Section("demo", "The demo search against its seeds", 2, run, render)
