"""How faithful is short-training fitness? Rank correlation between the proxy and the confirmed accuracy.

The search ranks masks by validation accuracy after a short training run (the proxy); what a researcher
wants is the accuracy under the full protocol (confirmed). A proxy is only as good as the order it puts masks
in, so this section measures Spearman's ρ between the two over a set of masks like those a search meets:
SynFlow masks at several compressions from several init seeds, random masks with SynFlow's layer densities,
and mutants of the SynFlow masks made by the GA's own operators.

Every mask is trained with the full protocol from the proxy seeds and from held-out confirmation seeds. The
proxy at budget b is the validation accuracy after b steps of the proxy seeds' runs, read off their curves:
``training.batch_indices`` and Adam at a constant rate make a run of b steps exactly the first b steps of a
longer run, so the curve is every budget's proxy at once (``test_proxy_is_the_prefix_of_the_long_run``).
The confirmed accuracy is the test accuracy at the early-stopping iteration, mean over the held-out seeds:
fresh inits, since in the topology fitness mode a mask is scored for any init, not its lucky one.

ρ is reported over all masks (where density alone orders much) and within each compression (what NSGA-II
needs at a fixed density), for the proxy from one seed and averaged over two (common random numbers).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import spearmanr

import lotterysearch as ls
from experiments.common import Context, Rendered, Section
from experiments.lth import train_mask
from lotterysearch.core.data import load_dataset
from lotterysearch.core.masks import Mask, layerwise_shuffle
from lotterysearch.core.models import build_model
from lotterysearch.evolution.operators import (
    layer_density_mutation,
    move_mutation,
    neuron_grow_mutation,
    neuron_prune_mutation,
)
from lotterysearch.execution import backend
from lotterysearch.settings import TrainingConfig
from lotterysearch.stats import markdown_table


@dataclass(frozen=True)
class ProxySettings:
    dataset: str
    model: str
    training: TrainingConfig  # the full protocol; the proxies are its prefixes
    budgets: tuple[int, ...]  # proxy budgets in steps, each a multiple of training.eval_every
    compressions: tuple[float, ...]
    prune_seeds: tuple[int, ...]  # SynFlow's init seeds (none of them a training seed)
    proxy_seeds: tuple[int, ...] = (0, 1)
    confirm_seeds: tuple[int, ...] = (2, 3)
    evaluator: str = "ray"  # or "local"

    def __post_init__(self) -> None:
        every = self.training.eval_every
        bad = [b for b in self.budgets if b % every or b > self.training.steps]
        if every <= 0 or bad:
            raise ValueError(f"budgets {bad} are not multiples of eval_every {every} within the run")


SETTINGS = {
    # MNIST-1D: Adam 2e-3 at batch 100 (the dense MLP's validation accuracy levels off after ~1000 steps)
    "small": ProxySettings(
        dataset="mnist1d",
        model="mlp:40-100-100-10:glorot",
        training=TrainingConfig(steps=1500, optimizer="adam", lr=0.002, batch_size=100, eval_every=25),
        budgets=(25, 50, 100, 200, 400, 800, 1500),
        compressions=(3.0, 10.0, 30.0, 100.0),
        prune_seeds=(10, 11, 12),
    ),
    # LeNet-300-100 under the lottery-ticket protocol of lenet_imp_small.toml, at the report's densities
    "large": ProxySettings(
        dataset="mnist",
        model="mlp:784-300-100-10:glorot",
        training=TrainingConfig(steps=3000, optimizer="adam", lr=0.0012, batch_size=60, eval_every=100),
        budgets=(100, 200, 400, 800, 1600, 3000),
        compressions=(1 / 0.211, 1 / 0.07, 1 / 0.036, 1 / 0.019),
        prune_seeds=(10, 11, 12),
    ),
}
KINDS = ("synflow", "random", "move 0.1", "move 0.3", "layer density", "layer density'", "neuron prune",
         "neuron grow", "move 0.6")  # fmt: skip


def variants(sf: Mask, rng: np.random.Generator) -> dict[str, Mask]:
    """The masks made from one SynFlow mask: itself, its layerwise shuffle, and seven operator mutants."""
    return {
        "synflow": sf,
        "random": layerwise_shuffle(sf, rng),
        "move 0.1": move_mutation(sf, rng, 0.1),
        "move 0.3": move_mutation(sf, rng, 0.3),
        "layer density": layer_density_mutation(sf, rng, 0.3),
        "layer density'": layer_density_mutation(sf, rng, 0.3),
        "neuron prune": neuron_prune_mutation(sf, rng, 0.2),
        "neuron grow": neuron_grow_mutation(sf, rng, 0.2),
        "move 0.6": move_mutation(sf, rng, 0.6),
    }


def mask_set(s: ProxySettings) -> list[dict[str, Any]]:
    """Every mask of the study with what it is: (prune seed, compression, kind)."""
    out = []
    for p in s.prune_seeds:
        for c in s.compressions:
            sf = ls.prune(build_model(s.model, p), "synflow", compression=c)
            rng = np.random.default_rng([p, round(c * 1000)])
            for kind, mask in variants(sf, rng).items():
                out.append({"prune_seed": p, "compression": c, "kind": kind, "mask": mask})
    return out


def proxy_at(curve: Sequence[Mapping[str, float]], budget: int) -> float:
    """Validation accuracy after ``budget`` steps, from a longer run's curve."""
    for point in curve:
        if point["step"] == budget:
            return float(point["val_accuracy"])
    raise KeyError(f"no evaluation at step {budget}")


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rank correlation (ties get average ranks); NaN when either side is constant."""
    if len(set(x)) < 2 or len(set(y)) < 2:
        return math.nan
    return float(spearmanr(x, y).statistic)


def measure(s: ProxySettings, ctx: Context) -> dict[str, Any]:
    data = load_dataset(s.dataset, 0, data_dir=ctx.data_dir or None)
    masks = mask_set(s)
    seeds = (*s.proxy_seeds, *s.confirm_seeds)
    ctx.progress(f"[proxy] {len(masks)} masks x {len(seeds)} seeds x {s.training.steps} steps")
    jobs = backend.jobs(train_mask, data, local=backend.runs_locally(s.evaluator))
    for i, m in enumerate(masks):
        for seed in seeds:
            jobs.submit((i, seed), s.model, seed, m["mask"].pack(), m["mask"].shapes, s.training, "forward")
    results: dict[tuple[int, int], dict[str, Any]] = {}
    total = jobs.pending()
    while jobs.pending():
        key, result = jobs.next_done()
        results[key] = result
        if len(results) % 25 == 0 or len(results) == total:
            ctx.progress(f"  trained {len(results)}/{total}")
    jobs.close()
    rows = []
    for i, m in enumerate(masks):
        rows.append(
            {
                "prune_seed": m["prune_seed"],
                "compression": m["compression"],
                "kind": m["kind"],
                "density": m["mask"].density(),
                "proxy": {
                    str(seed): [proxy_at(results[(i, seed)]["curve"], b) for b in s.budgets]
                    for seed in s.proxy_seeds
                },
                "confirmed": [results[(i, seed)]["early_stop"]["test_accuracy"] for seed in s.confirm_seeds],
                "confirmed_final": [results[(i, seed)]["test_accuracy"] for seed in s.confirm_seeds],
            }
        )
    return {
        "dataset": s.dataset,
        "model": s.model,
        "training": {
            k: getattr(s.training, k) for k in ("steps", "optimizer", "lr", "batch_size", "eval_every")
        },
        "budgets": list(s.budgets),
        "compressions": list(s.compressions),
        "proxy_seeds": list(s.proxy_seeds),
        "confirm_seeds": list(s.confirm_seeds),
        "masks": rows,
        "training_steps": len(masks) * len(seeds) * s.training.steps,
    }


def run(ctx: Context) -> dict[str, Any]:
    return measure(SETTINGS[ctx.settings], ctx)


def _proxy(row: Mapping[str, Any], seeds: Sequence[int], b: int) -> float:
    return float(np.mean([row["proxy"][str(s)][b] for s in seeds]))


def correlations(res: Mapping[str, Any]) -> dict[str, list[float]]:
    """ρ(proxy at each budget, confirmed) for 1 and 2 proxy seeds, over all masks and within compressions
    (mean of the per-compression ρ)."""
    rows = res["masks"]
    confirmed = [float(np.mean(r["confirmed"])) for r in rows]
    out: dict[str, list[float]] = {}
    for n in (1, len(res["proxy_seeds"])):
        seeds = res["proxy_seeds"][:n]
        overall, within = [], []
        for b in range(len(res["budgets"])):
            proxy = [_proxy(r, seeds, b) for r in rows]
            overall.append(spearman(proxy, confirmed))
            per = []
            for c in res["compressions"]:
                idx = [i for i, r in enumerate(rows) if r["compression"] == c]
                per.append(spearman([proxy[i] for i in idx], [confirmed[i] for i in idx]))
            within.append(float(np.nanmean(per)) if not all(math.isnan(p) for p in per) else math.nan)
        out[f"overall_{n}"], out[f"within_{n}"] = overall, within
    return out


def seed_to_seed(res: Mapping[str, Any]) -> list[float]:
    """Per compression, ρ between the two confirmation seeds' accuracies: how well one full-protocol run
    ranks the masks for another init, about what a single-seed proxy can reach."""
    rows = res["masks"]
    per = []
    for c in res["compressions"]:
        group = [r for r in rows if r["compression"] == c]
        per.append(spearman([r["confirmed"][0] for r in group], [r["confirmed"][1] for r in group]))
    return per


def noise_ceiling(res: Mapping[str, Any]) -> float:
    """``seed_to_seed`` averaged over the compressions."""
    return float(np.nanmean(seed_to_seed(res)))


def per_compression(res: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Per compression: the spread of the confirmed accuracies over its masks (std), the seed-to-seed ρ, and
    the proxy's ρ (all proxy seeds) at each budget."""
    rows, seeds = res["masks"], res["proxy_seeds"]
    out = []
    for c, ceiling in zip(res["compressions"], seed_to_seed(res), strict=True):
        group = [r for r in rows if r["compression"] == c]
        confirmed = [float(np.mean(r["confirmed"])) for r in group]
        rho = [spearman([_proxy(r, seeds, b) for r in group], confirmed) for b in range(len(res["budgets"]))]
        out.append(
            {
                "compression": c,
                "mean": float(np.mean(confirmed)),
                "std": float(np.std(confirmed, ddof=1)),
                "seed_to_seed": ceiling,
                "rho": rho,
            }
        )
    return out


def informative(res: Mapping[str, Any], threshold: float = 0.5) -> list[dict[str, Any]]:
    """The compressions whose masks differ by more than init noise (seed-to-seed ρ ≥ ``threshold``): only
    there can any proxy rank them; all compressions when none qualifies."""
    groups = per_compression(res)
    return [g for g in groups if g["seed_to_seed"] >= threshold] or groups


def informative_rho(res: Mapping[str, Any]) -> list[float]:
    """The proxy's ρ (all proxy seeds) at each budget, averaged over the informative compressions."""
    return [float(np.nanmean(col)) for col in zip(*(g["rho"] for g in informative(res)), strict=True)]


def chosen_budget(res: Mapping[str, Any], tolerance: float = 0.05) -> int:
    """The smallest budget whose ρ on the informative compressions is within ``tolerance`` of the best:
    beyond it more steps buy little ranking."""
    rho = informative_rho(res)
    best = np.nanmax(rho)
    return next(b for b, r in zip(res["budgets"], rho, strict=True) if r >= best - tolerance)


def proxy_figure(res: Mapping[str, Any]):  # noqa: ANN201 - matplotlib Figure
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rho = correlations(res)
    n = len(res["proxy_seeds"])
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for key, label, style in (
        ("overall_1", "all masks, 1 seed", "C0--"),
        (f"overall_{n}", f"all masks, {n} seeds", "C0-"),
        ("within_1", "within a compression, 1 seed", "C1--"),
        (f"within_{n}", f"within a compression, {n} seeds", "C1-"),
    ):
        ax.plot(res["budgets"], rho[key], style, marker="o", ms=3, label=label)
    kept = ", ".join(f"{g['compression']:.3g}" for g in informative(res))
    ax.plot(
        res["budgets"], informative_rho(res), "C3-", marker="s", ms=3, label=f"compressions {kept}, {n} seeds"
    )
    ceiling = noise_ceiling(res)
    ax.axhline(ceiling, color="grey", lw=0.8, ls=":", label="seed-to-seed ρ of the full protocol (mean)")
    low, high = ax.get_ylim()
    ax.set_ylim(min(low, ceiling - 0.05), max(high, 1.0))
    ax.set_xscale("log")
    ax.set_xlabel("proxy budget (training steps)")
    ax.set_ylabel("Spearman ρ with confirmed test accuracy")
    ax.set_title(f"{res['model']} / {res['dataset']}: {len(res['masks'])} masks")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def render(res: Mapping[str, Any], ctx: Context) -> Rendered:
    rho = correlations(res)
    n = len(res["proxy_seeds"])
    t = res["training"]
    ctx.figures.mkdir(parents=True, exist_ok=True)
    path = ctx.figures / f"proxy_{res['dataset']}.png"
    fig = proxy_figure(res)
    fig.savefig(path, dpi=120)
    import matplotlib.pyplot as plt

    plt.close(fig)
    table = markdown_table(
        [
            "proxy budget (steps)",
            "ρ all, 1 seed",
            f"ρ all, {n} seeds",
            "ρ within, 1 seed",
            f"ρ within, {n} seeds",
        ],
        [
            [str(b), *(f"{rho[k][i]:.3f}" for k in ("overall_1", f"overall_{n}", "within_1", f"within_{n}"))]
            for i, b in enumerate(res["budgets"])
        ],
    )
    chosen = chosen_budget(res)
    i = res["budgets"].index(chosen)
    ceiling = noise_ceiling(res)
    groups = per_compression(res)
    by_c = markdown_table(
        [
            "compression",
            "confirmed acc (mean, std over masks)",
            "seed-to-seed ρ",
            *(f"ρ at {b}" for b in res["budgets"]),
        ],
        [
            [
                f"{g['compression']:.3g}",
                f"{g['mean']:.3f}, {g['std']:.3f}",
                f"{g['seed_to_seed']:.2f}",
                *(f"{r:.2f}" for r in g["rho"]),
            ]
            for g in groups
        ],
    )
    spread = [g for g in groups if g["seed_to_seed"] >= 0.5]
    kinds = sorted({r["kind"] for r in res["masks"]})
    body = "\n".join(
        [
            f"{len(res['masks'])} masks of `{res['model']}` on {res['dataset']} (SynFlow at compressions "
            f"{', '.join(f'{c:.3g}' for c in res['compressions'])} from init seeds 10-12, and for each: "
            f"{', '.join(k for k in kinds if k != 'synflow')}), each trained with the full protocol "
            f"(Adam {t['lr']:g}, batch {t['batch_size']}, {t['steps']} steps, evaluation every "
            f"{t['eval_every']}) from proxy seeds {res['proxy_seeds']} and confirmation seeds "
            f"{res['confirm_seeds']}. Proxy: validation accuracy after b steps (mean over the proxy seeds); "
            "confirmed: test accuracy at the early-stopping iteration, mean over the confirmation seeds. "
            "'Within' is the mean of the ρ inside each compression (what ranks masks of one density).",
            "",
            table,
            "",
            f"Seed-to-seed ρ of the full protocol within a compression (one confirmation seed against the "
            f"other), averaged: {ceiling:.3f}. Per compression ({n}-seed proxy):",
            "",
            by_c,
            "",
            f"Training steps: {res['training_steps']:,}.",
            "",
            f"![proxy]({ctx.figure_link(path)})",
        ]
    )
    rho_i = informative_rho(res)
    n_group = min(sum(r["compression"] == g["compression"] for r in res["masks"]) for g in groups)
    kept = ", ".join(f"{g['compression']:.3g}" for g in spread) or "none"
    answer = (
        f"**Short training ranks masks {'well' if rho_i[i] >= 0.7 else 'only roughly'} where they differ:** at "
        f"the compressions whose masks differ by more than init noise ({kept}: two full-protocol runs from "
        f"different inits agree to ρ ≥ 0.5), the {n}-seed proxy after {chosen} steps ({chosen / t['steps']:.0%} "
        f"of the protocol) reaches Spearman ρ = {rho_i[i]:.2f} with the confirmed accuracy, against "
        f"{rho_i[-1]:.2f} after all {t['steps']} steps and {rho_i[0]:.2f} after {res['budgets'][0]}: the "
        f"smallest budget within 0.05 of the best (each ρ over {n_group} masks, standard error about "
        f"{1 / math.sqrt(max(n_group - 3, 1)):.2f}). Where the masks of one compression are alike (the other "
        "compressions: seed-to-seed ρ below 0.5) no budget ranks them, and none needs to. Over all masks the "
        f"proxy's ρ is {rho[f'overall_{n}'][i]:.2f}: density alone orders most of it."
    )
    return Rendered(body=body, answer=answer)


SECTION = Section("proxy", "Short-training fitness against confirmed accuracy (the proxy)", 2, run, render)
