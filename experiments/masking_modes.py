"""Question 3: can masking be applied only in the forward pass, or only in the gradient, and what does each
cost?

SynFlow masks at several densities, each trained in the three modes of ``lotterysearch.core.masks`` from the
init it was pruned from (same batches): ``forward`` (z = (M⊙W)h + b: the pruned network), ``gradient``
(dense forward, gradient M ⊙ ∂L/∂W: pruned weights keep their initial values and still act) and
``straight_through`` (masked forward, dense gradient). Besides accuracy in its own mode, each trained
network is evaluated *deployed*: with the mask applied in the forward pass, i.e. as the sparse network.
Each mode is compared with ``forward``, and the gradient-masked network deployed with itself as trained, paired
by init and decided as one family (``lotterysearch.verdicts``: paired t, Holm, TOST within a declared margin).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from experiments import common
from experiments.common import Context, Rendered, Section
from lotterysearch.core.data import load_dataset
from lotterysearch.core.masks import MODES, Mask
from lotterysearch.core.models import build_model
from lotterysearch.pruning.pruners import prune
from lotterysearch.settings import TrainingConfig
from lotterysearch.stats import markdown_table, mean_std, pm
from lotterysearch.training.trainer import evaluate, train
from lotterysearch.verdicts import Verdict


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
    # Two test accuracies within this many points count as level: the margin of every equivalence test (TOST)
    # of the section, as section 1's. Declared before the next run, which stores it with its settings; the saved
    # run was made before it was declared.
    equivalence_margin: float = 0.5


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


# The section's comparisons at each model and density: (mode, what) of a, then of b, for a − b, and a label.
COMPARISONS = {
    "gradient": (("gradient", "test"), ("forward", "test"), "gradient-only (as trained) − forward"),
    "deployed": (
        ("gradient", "deployed"),
        ("gradient", "test"),
        "gradient-only: deployed sparse − as trained",
    ),
    "straight_through": (("straight_through", "test"), ("forward", "test"), "straight-through − forward"),
}
IN_WORDS = {
    "gradient": "gradient-only masking against forward masking",
    "deployed": "the gradient-only network deployed sparse against itself as trained",
    "straight_through": "straight-through against forward masking",
}


def margin(results: Mapping[str, Any]) -> tuple[float, bool]:
    """The equivalence margin in points, and whether the run stored it with its settings (declared before it
    ran) or it is the current settings', declared after the run that ``results`` holds."""
    if "equivalence_margin" in results["settings"]:
        return float(results["settings"]["equivalence_margin"]), True
    return SETTINGS[results.get("settings_name", "small")].equivalence_margin, False


Key = tuple[str, float, str]  # (model, density, comparison)


def compared(results: Mapping[str, Any]) -> dict[Key, tuple[dict[int, float], dict[int, float]]]:
    """Every comparison of the section as (a, b) test accuracies by init seed."""
    seeds = results["settings"]["seeds"]
    out = {}
    for res in results["models"]:
        for d in res["densities"]:
            for kind, ((ma, wa), (mb, wb), _) in COMPARISONS.items():
                a = common.by_replicate(d["modes"][ma][wa]["values"], seeds)
                out[(res["model"], d["density"], kind)] = (
                    a,
                    common.by_replicate(d["modes"][mb][wb]["values"], seeds),
                )
    return out


def verdicts(results: Mapping[str, Any]) -> dict[Key, Verdict]:
    """``compared``'s comparisons decided as one family, in points (``common.decide``)."""
    return common.decide(compared(results), margin(results)[0])


def screen(d: Mapping[str, Any], kind: str) -> str | None:
    """What the report's earlier 2-SE screen (Welch, unpaired) said of one comparison at density entry ``d``;
    None where it gave the difference without a verdict (gradient-only against forward)."""
    if kind == "gradient":
        return None
    (ma, wa), (mb, wb), _ = COMPARISONS[kind]
    a, b = d["modes"][ma][wa], d["modes"][mb][wb]
    if not common.differs(a, b):
        return "indistinguishable"
    return "better" if a["mean"] > b["mean"] else "worse"


def verdict_table(results: Mapping[str, Any], decided: Mapping[Key, Verdict]) -> str:
    entries = {(res["model"], d["density"]): d for res in results["models"] for d in res["densities"]}
    rows = [
        [
            f"`{model}`",
            f"{density:g}",
            COMPARISONS[kind][2],
            v.interval(),
            common.test_cell(v),
            common.verdict_cell(v, s) if (s := screen(entries[(model, density)], kind)) else str(v),
        ]
        for (model, density, kind), v in decided.items()
    ]
    header = ["model", "density", "comparison (test accuracy)", "difference, points [95% CI]", "paired test",
              "verdict"]  # fmt: skip
    return markdown_table(header, rows)


def render(results: Mapping[str, Any], ctx: Context) -> Rendered:
    s = results["settings"]
    decided = verdicts(results)
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
        answers += mode_answer(res, decided)
    how = common.method_text(
        decided,
        *margin(results),
        "`experiments/masking_modes.py` (`ModesSettings.equivalence_margin`)",
        screen="a difference beyond 2 Welch standard errors, unpaired",
    )
    parts += [how, "", verdict_table(results, decided), ""]
    head = headline(results["models"], decided)
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


def headline(models: Sequence[Mapping[str, Any]], decided: Mapping[Key, Verdict]) -> str:
    """The verdict, from the numbers: does each mode train, and how does it compare with ``forward``?"""
    ds = [(res["model"], d) for res in models for d in res["densities"]]
    frozen = all(d["modes"]["gradient"]["pruned_moved"]["mean"] == 0 for _, d in ds)
    st_identical = [
        d for _, d in ds if _identical(d["modes"]["straight_through"]["test"], d["modes"]["forward"]["test"])
    ]
    deployed = [decided[(m, d["density"], "deployed")] for m, d in ds]
    st = {f"density {d['density']:g}": decided[(m, d["density"], "straight_through")] for m, d in ds}
    costs = [v.difference.mean for v in deployed]
    text = (
        "**Yes, both can be applied, at different costs.** Masking only the gradient trains a dense network "
        + (
            "whose pruned weights stay frozen at their initial values (0% moved in every run)"
            if frozen
            else "whose pruned weights moved in some run (unexpected: see the table)"
        )
        + f"; as trained it uses every weight, and deployed as the sparse network it differs from itself as "
        f"trained by {min(costs):+.2f} to {max(costs):+.2f} points, shown worse in "
        f"{sum(v.kind == 'worse' for v in deployed)} of {len(ds)} settings (paired t, Holm over the section's "
        "tests). Masking only the forward pass (straight-through) trains the sparse network with a dense "
        "gradient; "
        + (
            f"its accuracy is identical to forward masking in every run of all {len(ds)} settings (so equivalent "
            "by TOST), as it must be for a fixed mask (see the last paragraph)."
            if len(st_identical) == len(ds)
            else f"against forward masking it is {common.grouped(st)}, identical in {len(st_identical)} of {len(ds)} settings."
        )
    )
    prefix = (lambda m: f"on `{m}` ") if len(models) > 1 else (lambda m: "")
    moved = common.changes(
        [
            (prefix(m) + IN_WORDS[kind], f"density {d['density']:g}", decided[(m, d["density"], kind)],
             screen(d, kind))
            for m, d in ds
            for kind in COMPARISONS
        ]
    )  # fmt: skip
    return text + (f" {moved}" if moved else "")


def mode_answer(res: Mapping[str, Any], decided: Mapping[Key, Verdict]) -> list[str]:
    """Sentences per model from the numbers: each mode against ``forward`` (the sparse network)."""
    out = []
    dense = res["dense"]["test"]
    for d in res["densities"]:
        fw, gr, st = (d["modes"][k] for k in ("forward", "gradient", "straight_through"))
        v = {kind: decided[(res["model"], d["density"], kind)] for kind in COMPARISONS}
        out.append(
            f"`{res['model']}` at density {d['density']:g}: forward masking reaches {pm(fw['test'])} (dense "
            f"{pm(dense)}). Gradient-only masking reaches {pm(gr['test'])} as trained ({v['gradient'].interval()} "
            f"points against forward: {v['gradient']}), but that network is dense: its pruned weights, frozen at "
            f"their initial values (moved: {gr['pruned_moved']['mean']:.0%}), still act, and deployed with the "
            f"mask it gives {pm(gr['deployed'])} ({v['deployed'].interval()} points against itself as trained: "
            f"{v['deployed']})"
            + (" — the cost of not training the sparse network." if v["deployed"].kind == "worse" else ".")
            + f" Straight-through (masked forward, dense gradient) reaches {pm(st['test'])}"
            + (
                ", identical to forward masking in every run"
                if _identical(st["test"], fw["test"])
                else f", {v['straight_through']} against forward ({v['straight_through'].interval()} points)"
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
