"""Question 3: can masking be applied only in the forward pass, or only in the gradient, and what does each
cost?

SynFlow masks at several densities, each trained in the three modes of ``lotterysearch.core.masks`` from the
init it was pruned from (same batches): ``forward`` (z = (M⊙W)h + b: the pruned network), ``gradient``
(dense forward, gradient M ⊙ ∂L/∂W: pruned weights keep their initial values and still act) and
``straight_through`` (masked forward, dense gradient). Besides accuracy in its own mode, each trained
network is evaluated *deployed*: with the mask applied in the forward pass, i.e. as the sparse network.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from experiments.common import Context, Rendered, Section, difference, differs
from lotterysearch.core.data import load_dataset
from lotterysearch.core.masks import MODES, Mask
from lotterysearch.core.models import build_model
from lotterysearch.pruning.pruners import prune
from lotterysearch.settings import TrainingConfig
from lotterysearch.stats import markdown_table, mean_std, pm
from lotterysearch.training.trainer import evaluate, train


@dataclass(frozen=True)
class ModelRun:
    model: str
    dataset: str
    training: (
        TrainingConfig  # its eval_every: validation accuracy recorded every this many steps (the curves)
    )


@dataclass(frozen=True)
class ModesSettings:
    models: tuple[ModelRun, ...]
    densities: tuple[float, ...]
    seeds: tuple[int, ...]
    pruner: str = "synflow"


MNIST1D = ModelRun(
    "mlp:40-100-100-10", "mnist1d", TrainingConfig(steps=575, lr=0.01, batch_size=128, eval_every=23)
)
LENET = ModelRun(
    "mlp:784-300-100-10", "mnist", TrainingConfig(steps=2000, lr=0.0012, batch_size=60, eval_every=100)
)
SETTINGS = {
    "small": ModesSettings(models=(MNIST1D,), densities=(0.1, 0.03, 0.01), seeds=(0, 1, 2, 3, 4)),
    "large": ModesSettings(
        models=(MNIST1D, LENET), densities=(0.3, 0.1, 0.03, 0.01, 0.003), seeds=tuple(range(10))
    ),
}


def _train(spec: ModelRun, mask: Mask | None, mode: str, seed: int, data: Any) -> dict[str, Any]:
    model = build_model(spec.model, seed)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    t0 = time.monotonic()
    r = train(
        model,
        mask,
        data,
        spec.training,
        mode=mode,
        seed=seed,
        evaluate_test=True,
    )
    seconds = time.monotonic() - t0
    out = {"test": r.test_accuracy, "seconds": seconds, "curve": r.curve}
    if mask is not None:
        out["deployed"] = evaluate(model, mask, data.x_test, data.y_test, "forward")[0]
        moved = pruned = 0
        for name in mask:
            w = dict(model.named_parameters())[f"layers.{name}.weight"].detach()
            off = ~mask[name]
            moved += int((w[off] != before[f"layers.{name}.weight"][off]).sum())
            pruned += int(off.sum())
        out["pruned_moved"] = moved / pruned if pruned else 0.0
    return out


def _curve_mean_std(curves: Sequence[Sequence[Mapping[str, float]]]) -> dict[str, list[float]]:
    acc = np.array([[p["val_accuracy"] for p in c] for c in curves])
    return {
        "step": [p["step"] for p in curves[0]],
        "mean": acc.mean(0).tolist(),
        "std": (acc.std(0, ddof=1) if len(curves) > 1 else np.zeros(acc.shape[1])).tolist(),
    }


def run(ctx: Context) -> dict[str, Any]:
    s = SETTINGS[ctx.settings]
    out: dict[str, Any] = {"settings": asdict(s), "models": []}
    for spec in s.models:
        data = load_dataset(spec.dataset, 0, data_dir=ctx.data_dir or None)
        t0 = time.monotonic()
        dense = [_train(spec, None, "forward", seed, data) for seed in s.seeds]
        res: dict[str, Any] = {
            **asdict(spec),
            "dense": {
                "test": mean_std(d["test"] for d in dense),
                "curve": _curve_mean_std([d["curve"] for d in dense]),
            },
            "densities": [],
        }
        for density in s.densities:
            masks = {
                seed: prune(build_model(spec.model, seed), s.pruner, 1 / density, seed=seed)
                for seed in s.seeds
            }
            per_mode = {}
            for mode in MODES:
                runs = [_train(spec, masks[seed], mode, seed, data) for seed in s.seeds]
                per_mode[mode] = {
                    "test": {**mean_std(r["test"] for r in runs), "values": [r["test"] for r in runs]},
                    "deployed": {
                        **mean_std(r["deployed"] for r in runs),
                        "values": [r["deployed"] for r in runs],
                    },
                    "seconds": mean_std(r["seconds"] for r in runs),
                    "pruned_moved": mean_std(r["pruned_moved"] for r in runs),
                    "curve": _curve_mean_std([r["curve"] for r in runs]),
                }
                ctx.progress(
                    f"[modes] {spec.model} density {density:g} {mode}: test {pm(per_mode[mode]['test'])}, "
                    f"deployed {pm(per_mode[mode]['deployed'])}"
                )
            res["densities"].append(
                {
                    "density": density,
                    "actual_density": float(np.mean([m.density() for m in masks.values()])),
                    "modes": per_mode,
                }
            )
        res["elapsed_s"] = time.monotonic() - t0
        out["models"].append(res)
    return out


MODE_STYLE = {
    "forward": ("#1f77b4", "-"),
    "gradient": ("#d62728", "--"),
    "straight_through": ("#2ca02c", "-."),
}


def curves_figure(res: Mapping[str, Any], n_seeds: int):  # noqa: ANN201 - matplotlib Figure
    from matplotlib.figure import Figure

    ds = res["densities"]
    fig = Figure(figsize=(4.2 * len(ds) + 0.6, 4.0), dpi=110, layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(ds), sharey=True))
    dense = res["dense"]["curve"]
    for ax, d in zip(axes, ds, strict=True):
        ax.plot(dense["step"], dense["mean"], color="black", lw=1.2, alpha=0.6, label="dense")
        for mode, m in d["modes"].items():
            c, ls = MODE_STYLE[mode]
            x, y, e = np.array(m["curve"]["step"]), np.array(m["curve"]["mean"]), np.array(m["curve"]["std"])
            ax.plot(x, y, ls, color=c, lw=1.8, label=mode)
            ax.fill_between(x, y - e, y + e, color=c, alpha=0.15, lw=0)
        ax.set_title(
            f"SynFlow mask, density {d['density']:g}\n(straight_through coincides with forward)", fontsize=10
        )
        if not _identical(d["modes"]["straight_through"]["test"], d["modes"]["forward"]["test"]):
            ax.set_title(f"SynFlow mask, density {d['density']:g}", fontsize=10)
        ax.set_xlabel("training step")
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel(f"val. accuracy, own mode ({n_seeds} seeds)")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=len(labels), fontsize=9)
    fig.suptitle(f"Masking modes: {res['model']} on {res['dataset']}")
    return fig


def render(results: Mapping[str, Any], ctx: Context) -> Rendered:
    s = results["settings"]
    parts, answers = [], []
    for res in results["models"]:
        t = res["training"]
        fig = curves_figure(res, len(s["seeds"]))
        path = ctx.figures / f"modes_{res['dataset']}.png"
        ctx.figures.mkdir(parents=True, exist_ok=True)
        fig.savefig(path)
        rows = []
        for d in res["densities"]:
            for mode, m in d["modes"].items():
                rows.append(
                    (f"{d['density']:g}", f"`{mode}`", pm(m["test"]), pm(m["deployed"]), f"{m['pruned_moved']['mean']:.3f}",
                     f"{m['seconds']['mean']:.2f}")
                )  # fmt: skip
        parts += [
            f"### `{res['model']}` on {res['dataset']}",
            "",
            f"{s['pruner']} masks from each of {len(s['seeds'])} init seeds, trained from that init for {t['steps']} "
            f"steps ({t['optimizer']}, lr {t['lr']:g}, batch {t['batch_size']}); test accuracy mean ± std "
            f"over seeds. Dense: {pm(res['dense']['test'])}. *deployed*: the trained weights evaluated with the "
            "mask applied (the sparse network). *pruned moved*: share of pruned weights changed by training. "
            "Seconds per run are wall time on a shared machine (noisy).",
            "",
            markdown_table(
                [
                    "density",
                    "mode",
                    "test acc (own mode)",
                    "test acc deployed sparse",
                    "pruned moved",
                    "s/run",
                ],
                rows,
            ),
            "",
            f"![training curves]({ctx.figure_link(path)})",
            "",
        ]
        answers += mode_answer(res)
    head = headline(results["models"])
    return Rendered(body="\n".join(parts), answer=head + "\n\n" + "\n\n".join([*answers, STRAIGHT_THROUGH]))


def _identical(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    return len(a["values"]) == len(b["values"]) and all(
        abs(x - y) < 1e-12 for x, y in zip(a["values"], b["values"], strict=True)
    )


STRAIGHT_THROUGH = (
    "Why straight-through can equal forward masking: with a fixed mask the kept weights receive the same "
    "gradient in both modes (the dense gradient differs only at pruned positions), Adam updates each weight "
    "from its own gradient alone, and pruned weights never enter the masked forward pass; so the network "
    "that is evaluated follows the same trajectory. Straight-through matters only when the mask changes "
    "during training (pruned weights that kept training can be regrown) or when updates couple weights; "
    "its cost is the dense backward pass and optimizer state for weights the network does not use."
)


def headline(models: Sequence[Mapping[str, Any]]) -> str:
    """The verdict, from the numbers: does each mode train, and how does it compare with ``forward``?"""
    ds = [d for res in models for d in res["densities"]]
    frozen = all(d["modes"]["gradient"]["pruned_moved"]["mean"] == 0 for d in ds)
    st_same = [
        d for d in ds if not differs(d["modes"]["straight_through"]["test"], d["modes"]["forward"]["test"])
    ]
    st_identical = [
        d for d in ds if _identical(d["modes"]["straight_through"]["test"], d["modes"]["forward"]["test"])
    ]
    gr_drop = [
        d
        for d in ds
        if differs(d["modes"]["gradient"]["deployed"], d["modes"]["gradient"]["test"])
        and d["modes"]["gradient"]["deployed"]["mean"] < d["modes"]["gradient"]["test"]["mean"]
    ]
    text = (
        "**Yes, both can be applied, at different costs.** Masking only the gradient trains a dense network "
        + (
            "whose pruned weights stay frozen at their initial values (0% moved in every run)"
            if frozen
            else "whose pruned weights moved in some run (unexpected: see the table)"
        )
        + f"; as trained it uses every weight, and deployed as the sparse network it loses accuracy in "
        f"{len(gr_drop)} of {len(ds)} settings. Masking only the forward pass (straight-through) trains the sparse "
        "network with a dense gradient; "
        + (
            f"its accuracy is identical to forward masking in every run of all {len(ds)} settings, as it must "
            "be for a fixed mask (see the last paragraph)."
            if len(st_identical) == len(ds)
            else f"its accuracy is indistinguishable from forward masking in {len(st_same)} of {len(ds)} settings "
            f"(2 SE criterion), identical in {len(st_identical)}."
        )
    )
    return text


def mode_answer(res: Mapping[str, Any]) -> list[str]:
    """Sentences per model from the numbers: each mode against ``forward`` (the sparse network)."""
    out = []
    dense = res["dense"]["test"]
    for d in res["densities"]:
        fw, gr, st = (d["modes"][k] for k in ("forward", "gradient", "straight_through"))
        st_vs = (
            "indistinguishable from"
            if not differs(st["test"], fw["test"])
            else ("better than" if st["test"]["mean"] > fw["test"]["mean"] else "worse than")
        )
        gr_drop = differs(gr["deployed"], gr["test"])
        out.append(
            f"`{res['model']}` at density {d['density']:g}: forward masking reaches {pm(fw['test'])} (dense "
            f"{pm(dense)}). Gradient-only masking reaches {pm(gr['test'])} as trained (difference to forward "
            f"{difference(gr['test'], fw['test'])}), but that network is dense: its pruned weights, frozen at "
            f"their initial values (moved: {gr['pruned_moved']['mean']:.0%}), still act, and deployed with the "
            f"mask it gives {pm(gr['deployed'])}"
            + (" — the cost of not training the sparse network." if gr_drop else ".")
            + f" Straight-through (masked forward, dense gradient) reaches {pm(st['test'])}"
            + (
                ", identical to forward masking in every run"
                if _identical(st["test"], fw["test"])
                else f", {st_vs} forward ({difference(st['test'], fw['test'])})"
            )
            + f"; its pruned weights move ({st['pruned_moved']['mean']:.0%} changed) under the dense gradient "
            "without ever entering the forward pass."
        )
    seconds = {k: mean_std(d["modes"][k]["seconds"]["mean"] for d in res["densities"])["mean"] for k in MODES}
    out.append(
        "Wall time per run (shared machine, noisy; all three modes compute the dense matrix product on CPU): "
        + ", ".join(f"{k} {v:.2f} s" for k, v in seconds.items())
        + "."
    )
    return out


SECTION = Section("modes", "Masking modes: forward, gradient, straight-through", 3, run, render)
