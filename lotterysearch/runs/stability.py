"""The mask-stability study that ``lotterysearch stability CONFIG --out DIR`` runs: does a pruner give the
same network from different initializations?

For init seeds s1..sN and each configured pruner and compression ρ, the N masks are compared pairwise with
the metrics of ``lotterysearch.core.overlap``: raw Jaccard overlap, its chance level for masks with the same
per-layer kept counts, the overlap after aligning hidden units (neurons; a convnet's channels), and, since
alignment also raises the overlap of unrelated masks, the *aligned chance* level (the same alignment applied
to two layerwise-shuffled copies, simulated, one draw per pair); isomorphism classes and direct vs effective
density. Then:

* accuracy after training each mask from its own init, from another seed's init, a layerwise-shuffled
  copy (same per-layer counts, random positions), a layerwise-random copy with the mask's effective
  density (``units.effective_matched_shuffle``: counts scaled by a common factor, since a shuffle strands
  weights off every path) and a degree-preserving shuffle; and across isomorphic (hidden units permuted)
  copies of the first seed's mask, all from one init, beside the spread across seeds. With
  ``eval_every`` every accuracy is read at the early-stopping iteration, and its step is stored, so that a
  reader sees each method stopped before its budget ended;
* the rounding sensitivity: on one init, SynFlow with ``rounding="round"`` vs ``"reference"``.

``run_stability`` writes ``report.md``, ``metrics.json`` (keys in ``METRICS_KEYS`` and ``RESULT_KEYS``)
and PNG plots. Std is the sample standard deviation (ddof = 1; 0 for a single value).
"""

from __future__ import annotations

import json
import math
import os
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lotterysearch.core.alignment import align, permute_hidden
from lotterysearch.core.canon import class_key
from lotterysearch.core.data import Dataset, load_dataset
from lotterysearch.core.masks import Mask, layerwise_shuffle
from lotterysearch.core.models import build_model, input_width
from lotterysearch.core.overlap import (
    aligned_jaccard,
    bootstrap_pair_mean,
    chance_jaccard,
    class_count,
    density_stats,
    excess_overlap,
    jaccard,
    layer_chance_jaccard,
    layer_jaccard,
    random_hidden_perms,
)
from lotterysearch.core.units import (
    chance_unit_jaccard,
    degree_preserving_shuffle,
    effective_matched_shuffle,
    live_unit_counts,
    unit_jaccard,
)
from lotterysearch.errors import ConfigError, LotterySearchError
from lotterysearch.pruning.pruners import IMP_TRAINING, kept_schedule, max_compression, prune
from lotterysearch.settings import (
    DATASETS,
    MODES,
    PRUNERS,
    ROUNDINGS,
    TrainingConfig,
    build_config,
    check_field,
    check_one_of,
    parse_toml,
    read_config_file,
    to_dict,
)
from lotterysearch.stats import markdown_table, mean_std, pm
from lotterysearch.training.trainer import train

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# ---- configuration -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PruningSection:
    """Which masks: every pruner at every compression ρ, from every init seed."""

    pruners: tuple[str, ...] = ("synflow", "snip", "magnitude", "random")
    compressions: tuple[float, ...] = (10.0, 100.0)
    iterations: int = 0  # 0: the pruner's default (100 for synflow, one-shot for the others)
    rounding: str = "round"
    imp_steps: int = 1000  # training steps per IMP round (pruner "imp"), and per CS round (pruner "cs")
    imp_rate: float = 0.2


@dataclass(frozen=True)
class StabilityTraining(TrainingConfig):
    """The training run behind every accuracy (``TrainingConfig``, checked as such; ``steps = 0`` skips
    training altogether), the masking mode, and which masks are trained."""

    steps: int = 575
    mode: str = "forward"
    pruners: tuple[str, ...] = ()  # which pruners' masks to train; empty: all
    compressions: tuple[float, ...] = ()  # at which ρ; empty: all
    permuted_copies: int = 4  # isomorphic copies of the first seed's mask


@dataclass(frozen=True)
class RoundingSection:
    """SynFlow with rounding "round" vs "reference" on each of these inits (empty: skip)."""

    seeds: tuple[int, ...] = (0, 1, 2, 3, 4, 5, 6)
    compression: float = 100.0
    iterations: int = 100


@dataclass(frozen=True)
class StabilityConfig:
    name: str = "stability"
    dataset: str = "mnist1d"
    model: str = "mlp:40-100-100-10"
    bias: bool = True
    data_dir: str = ""  # MNIST: the IDX files' directory (or $LOTTERYSEARCH_DATA)
    data_seed: int = 0  # the validation split
    seed: int = 0  # the random controls: shuffled masks, permutations
    init_seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    pruning: PruningSection = field(default_factory=PruningSection)
    training: StabilityTraining = field(default_factory=StabilityTraining)
    rounding: RoundingSection = field(default_factory=RoundingSection)


def validate_stability(cfg: StabilityConfig) -> StabilityConfig:
    """Check values against the registries; the first problem raises a one-line ``ConfigError``."""
    check_one_of("dataset", cfg.dataset, DATASETS)
    try:
        model = build_model(cfg.model, 0, bias=cfg.bias)
    except LotterySearchError as e:
        raise ConfigError(f"field 'model': {e}") from None
    check_field(
        "name",
        bool(cfg.name) and all(c.isalnum() or c in "-_." for c in cfg.name),
        "letters, digits, - _ .",
        cfg.name,
    )
    seeds = list(cfg.init_seeds)
    check_field(
        "init_seeds", len(seeds) >= 2 and len(set(seeds)) == len(seeds), "at least 2 distinct integers", seeds
    )
    p, t, r = cfg.pruning, cfg.training, cfg.rounding
    check_field("pruning.pruners", len(p.pruners) >= 1, "a non-empty list", list(p.pruners))
    for name in p.pruners:
        check_one_of("pruning.pruners", name, PRUNERS)
    rho_max = max_compression(model)
    check_field(
        "pruning.compressions",
        len(p.compressions) >= 1 and all(1 <= c <= rho_max for c in p.compressions),
        f"a non-empty list of numbers in [1, {rho_max:g}] (ρ_max of {cfg.model})",
        list(p.compressions),
    )
    check_field(
        "pruning.iterations", p.iterations >= 0, "an integer >= 0 (0: the pruner's default)", p.iterations
    )
    check_one_of("pruning.rounding", p.rounding, ROUNDINGS)
    check_field("pruning.imp_steps", p.imp_steps >= 1, "an integer >= 1", p.imp_steps)
    check_field("pruning.imp_rate", 0 < p.imp_rate < 1, "in (0, 1)", p.imp_rate)
    check_one_of(
        "training.mode", t.mode, MODES
    )  # steps, optimizer, lr, batch_size: checked by TrainingConfig
    for name in t.pruners:
        check_one_of("training.pruners", name, p.pruners)
    check_field(
        "training.compressions",
        set(t.compressions) <= set(p.compressions),
        f"a subset of pruning.compressions {list(p.compressions)}",
        list(t.compressions),
    )
    check_field("training.permuted_copies", t.permuted_copies >= 0, "an integer >= 0", t.permuted_copies)
    check_field(
        "rounding.compression", 1 <= r.compression <= rho_max, f"a number in [1, {rho_max:g}]", r.compression
    )
    check_field("rounding.iterations", r.iterations >= 1, "an integer >= 1", r.iterations)
    return cfg


def parse_stability_config(text: str, source: str = "<config>") -> StabilityConfig:
    return validate_stability(build_config(StabilityConfig, parse_toml(text, source), ""))


def load_stability_config(path: str | Path) -> StabilityConfig:
    return parse_stability_config(read_config_file(path), str(path))


# ---- the study -----------------------------------------------------------------------------------------

METRICS_KEYS = (
    "name",
    "config",
    "model",
    "dataset",
    "layers",
    "layer_sizes",
    "total_weights",
    "max_compression",
    "init_seeds",
    "dense_accuracy",
    "results",
    "rounding",
    "accuracy_split",
    "elapsed_s",
)
RESULT_KEYS = (
    "pruner",
    "compression",
    "density",
    "effective_density",
    "layer_density",
    "collapsed",
    "classes",
    "jaccard",
    "chance_jaccard",
    "excess_overlap",
    "aligned_jaccard",
    "aligned_chance_jaccard",
    "degree_aligned_chance_jaccard",
    "degree_effective_density",
    "shuffled_effective_density",
    "matched_density",
    "matched_effective_density",
    "excess_overlap_ci",
    "aligned_excess_ci",
    "input_jaccard",
    "input_chance_jaccard",
    "live_units",
    "aligned_unit_jaccard",
    "degree_aligned_unit_jaccard",
    "layer_jaccard",
    "layer_chance_jaccard",
    "pairs",
    "accuracy",
)
ACCURACY_KEYS = (
    "own",
    "other",
    "shuffled",
    "matched_shuffled",
    "degree_shuffled",
    "permuted",
    "permuted_same_class",
)
# Each trained control of ``ACCURACY_KEYS`` (all but the last) holds mean, std, n, the per-init ``values``,
# the early-stopping ``stop_steps`` (None without ``eval_every``) and the ``effective_density`` of the masks
# trained.
ROUNDING_KEYS = (
    "pruner",
    "compression",
    "iterations",
    "schedule_steps_differing",
    "schedule_max_difference",
    "final_kept",
    "per_seed",
    "jaccard",
    "aligned_jaccard",
    "cross_seed_jaccard",
    "cross_seed_aligned_jaccard",
    "cross_seed_chance_jaccard",
)


def _rng(cfg: StabilityConfig, *parts: object) -> np.random.Generator:
    """A generator per (purpose, pruner, ρ), stable when other pruners or compressions are added."""
    return np.random.default_rng([cfg.seed, *(zlib.crc32(str(p).encode()) for p in parts)])


def _load_data(cfg: StabilityConfig) -> Dataset:
    data = load_dataset(cfg.dataset, cfg.data_seed, data_dir=cfg.data_dir or None)
    data.check_input_width(cfg.model, input_width(build_model(cfg.model, 0, bias=cfg.bias)))
    return data


def _prune(
    cfg: StabilityConfig, seed: int, pruner: str, rho: float, data: Dataset | None, rounding: str
) -> Mask:
    model = build_model(cfg.model, seed, bias=cfg.bias)
    p = cfg.pruning
    if pruner == "imp":
        training = IMP_TRAINING.with_steps(p.imp_steps)
        return prune(
            model, "imp", rho, data=data, seed=seed, rounding=rounding, training=training, rate=p.imp_rate
        )
    if pruner == "cs":  # Continuous Sparsification, its rounds as long as IMP's
        training = IMP_TRAINING.with_steps(p.imp_steps)
        return prune(model, "cs", rho, data=data, seed=seed, rounding=rounding, training=training)
    return prune(model, pruner, rho, iterations=p.iterations or None, data=data, seed=seed, rounding=rounding)


def _train_accuracy(
    cfg: StabilityConfig, mask: Mask | None, init_seed: int, batch_seed: int, data: Dataset
) -> tuple[float, int | None]:
    """Test accuracy after ``training.steps`` steps from the init of ``init_seed``; with ``eval_every``, at
    the early-stopping iteration (the lowest validation loss: Frankle & Carbin's converged accuracy), and
    that iteration's step (None without ``eval_every``)."""
    t = cfg.training
    model = build_model(cfg.model, init_seed, bias=cfg.bias)
    r = train(model, mask, data, t.training(), mode=t.mode, seed=batch_seed, evaluate_test=True)
    if r.early_stop is not None:
        return float(r.early_stop.test_accuracy), r.early_stop.step
    return float(r.test_accuracy), None


def _trained(
    cfg: StabilityConfig,
    runs: Sequence[tuple[Mask | None, int, int]],
    data: Dataset,
    density: Sequence[Mask] = (),
) -> dict[str, Any]:
    """Train each (mask, init seed, batch seed): mean, std, n, the accuracies (``values``), their
    early-stopping steps (``stop_steps``) and, given the masks, their effective density."""
    out = [_train_accuracy(cfg, m, i, b, data) for m, i, b in runs]
    values, steps = [a for a, _ in out], [s for _, s in out]
    return {
        **mean_std(values),
        "values": values,
        "stop_steps": None if any(s is None for s in steps) else steps,
        "effective_density": mean_std(m.effective_density() for m in density) if density else None,
    }


def compare_masks(masks: Sequence[Mask], rng: np.random.Generator) -> dict[str, Any]:
    """All overlap, unit, density and class metrics of N masks of one pruner and ρ (``RESULT_KEYS`` minus
    pruner, compression and accuracy). ``rng`` draws the shuffled copies of the aligned-chance controls and
    the bootstrap over inits.

    Two nulls for aligned overlap: layerwise-shuffled copies (the same per-layer counts, even degrees) and
    degree-preserving shuffles (``units.degree_preserving_shuffle``: every unit's in- and out-degree kept),
    the one that fits a pruner with uneven degrees. Units: live units per unit layer; the overlap of which
    inputs are live against a null that keeps their number (inputs have fixed identities); the overlap of
    live hidden units after alignment against the same for degree-preserving shuffles."""
    n = len(masks)
    pairs = []
    layer_j: dict[str, list[float]] = {name: [] for name in masks[0]}
    layer_c: dict[str, list[float]] = {name: [] for name in masks[0]}
    degree_copies = [degree_preserving_shuffle(m, rng) for m in masks]
    controls = rng.spawn(1)[0]  # its own stream: the draws above and below are those of the study without it
    shuffled_copies = [layerwise_shuffle(m, controls) for m in masks]
    matched_copies = [effective_matched_shuffle(m, controls) for m in masks]
    excess, kappa = np.zeros((n, n)), np.zeros((n, n))
    for i, j in combinations(range(n), 2):
        a, b = masks[i], masks[j]
        raw, chance = jaccard(a, b), chance_jaccard(a, b)
        shuffled_a, shuffled_b = layerwise_shuffle(a, rng), layerwise_shuffle(b, rng)
        aligned_b = align(a, b)
        da, db = degree_copies[i], degree_copies[j]
        aligned_db = align(da, db)
        pair = {
            "i": i,
            "j": j,
            "jaccard": raw,
            "chance_jaccard": chance,
            "aligned_jaccard": jaccard(a, aligned_b),
            "aligned_chance_jaccard": aligned_jaccard(shuffled_a, shuffled_b),
            "degree_aligned_chance_jaccard": jaccard(da, aligned_db),
            "input_jaccard": unit_jaccard(a, b)[0],
            "input_chance_jaccard": chance_unit_jaccard(a, b)[0],
            "aligned_unit_jaccard": unit_jaccard(a, aligned_b)[1:-1],
            "degree_aligned_unit_jaccard": unit_jaccard(da, aligned_db)[1:-1],
        }
        pairs.append(pair)
        excess[i, j] = excess[j, i] = pair["aligned_jaccard"] - pair["degree_aligned_chance_jaccard"]
        kappa[i, j] = kappa[j, i] = excess_overlap(raw, chance)
        for name, v in layer_jaccard(a, b).items():
            layer_j[name].append(v)
        for name, v in layer_chance_jaccard(a, b).items():
            layer_c[name].append(v)
    keys = ("jaccard", "chance_jaccard", "aligned_jaccard", "aligned_chance_jaccard")
    keys += ("degree_aligned_chance_jaccard", "input_jaccard", "input_chance_jaccard")
    stat = {k: mean_std(p[k] for p in pairs) for k in keys}
    counts = [live_unit_counts(m) for m in masks]
    hidden = len(counts[0]) - 2
    return {
        "density": mean_std(m.density() for m in masks),
        "effective_density": mean_std(m.effective_density() for m in masks),
        "degree_effective_density": mean_std(m.effective_density() for m in degree_copies),
        "shuffled_effective_density": mean_std(m.effective_density() for m in shuffled_copies),
        "matched_density": mean_std(m.density() for m in matched_copies),
        "matched_effective_density": mean_std(m.effective_density() for m in matched_copies),
        "layer_density": {
            name: {**s, "per_seed": [m.layer_densities()[name] for m in masks]}
            for name, s in density_stats(masks).items()
        },
        "collapsed": sum(m.is_collapsed() for m in masks),
        "classes": class_count(masks),
        **stat,
        "excess_overlap": mean_std(excess_overlap(p["jaccard"], p["chance_jaccard"]) for p in pairs),
        "excess_overlap_ci": bootstrap_pair_mean(kappa, rng) if n > 2 else None,
        "aligned_excess_ci": bootstrap_pair_mean(excess, rng) if n > 2 else None,
        "live_units": [
            {**mean_std(c[k] for c in counts), "per_seed": [c[k] for c in counts]}
            for k in range(len(counts[0]))
        ],  # fmt: skip
        "aligned_unit_jaccard": [
            mean_std(p["aligned_unit_jaccard"][k] for p in pairs) for k in range(hidden)
        ],
        "degree_aligned_unit_jaccard": [
            mean_std(p["degree_aligned_unit_jaccard"][k] for p in pairs) for k in range(hidden)
        ],
        "layer_jaccard": {name: mean_std(v) for name, v in layer_j.items()},
        "layer_chance_jaccard": {name: mean_std(v) for name, v in layer_c.items()},
        "pairs": pairs,
    }


def _accuracy(
    cfg: StabilityConfig, masks: Sequence[Mask], rng: np.random.Generator, data: Dataset
) -> dict[str, Any]:
    """Own init, another seed's init (the next seed, cyclically), layerwise-shuffled, effective-density
    matched layerwise-random and degree-preserving shuffled copies; and permuted copies of the first mask
    from the first init. The batch order of mask i is always seed s_i. The matched copies are drawn last,
    so the other controls are the draws of the study without them."""
    seeds = list(cfg.init_seeds)
    n = len(seeds)
    shuffled = [layerwise_shuffle(m, rng) for m in masks]
    degree = [degree_preserving_shuffle(m, rng) for m in masks]
    copies = [
        permute_hidden(masks[0], random_hidden_perms(masks[0], rng))
        for _ in range(cfg.training.permuted_copies)
    ]
    matched = [effective_matched_shuffle(m, rng) for m in masks]
    own_runs = list(zip(masks, seeds, seeds, strict=True))
    key = class_key(masks[0])
    return {
        "own": _trained(cfg, own_runs, data, masks),
        "other": _trained(cfg, [(masks[i], seeds[(i + 1) % n], seeds[i]) for i in range(n)], data, masks),
        "shuffled": _trained(cfg, list(zip(shuffled, seeds, seeds, strict=True)), data, shuffled),
        "matched_shuffled": _trained(cfg, list(zip(matched, seeds, seeds, strict=True)), data, matched),
        "degree_shuffled": _trained(cfg, list(zip(degree, seeds, seeds, strict=True)), data, degree),
        "permuted": _trained(cfg, [(c, seeds[0], seeds[0]) for c in copies], data, copies),
        "permuted_same_class": all(class_key(c) == key for c in copies),
    }


def rounding_sensitivity(cfg: StabilityConfig) -> dict[str, Any]:
    """SynFlow on each rounding seed with rounding "round" and "reference" (``ROUNDING_KEYS``)."""
    r = cfg.rounding
    model = build_model(cfg.model, 0, bias=cfg.bias)
    total = Mask.ones(model).total()
    sched = {rule: kept_schedule(total, r.compression, r.iterations, rule) for rule in ("round", "reference")}
    diffs = [abs(x - y) for x, y in zip(sched["round"], sched["reference"], strict=True)]
    per_seed, rounded = [], []
    for s in r.seeds:
        m = build_model(cfg.model, s, bias=cfg.bias)
        a = prune(m, "synflow", r.compression, iterations=r.iterations, seed=s, rounding="round")
        b = prune(m, "synflow", r.compression, iterations=r.iterations, seed=s, rounding="reference")
        rounded.append(a)
        per_seed.append({"seed": s, "jaccard": jaccard(a, b), "aligned_jaccard": aligned_jaccard(a, b)})
    cross = [(rounded[i], rounded[j]) for i, j in combinations(range(len(rounded)), 2)]
    return {
        "pruner": "synflow",
        "compression": r.compression,
        "iterations": r.iterations,
        "schedule_steps_differing": sum(d > 0 for d in diffs),
        "schedule_max_difference": max(diffs, default=0),
        "final_kept": {"round": sched["round"][-1], "reference": sched["reference"][-1]},
        "per_seed": per_seed,
        "jaccard": mean_std(p["jaccard"] for p in per_seed),
        "aligned_jaccard": mean_std(p["aligned_jaccard"] for p in per_seed),
        "cross_seed_jaccard": mean_std(jaccard(a, b) for a, b in cross),
        "cross_seed_aligned_jaccard": mean_std(aligned_jaccard(a, b) for a, b in cross),
        "cross_seed_chance_jaccard": mean_std(chance_jaccard(a, b) for a, b in cross),
    }


def _trains(cfg: StabilityConfig, pruner: str, rho: float) -> bool:
    t = cfg.training
    return (
        t.steps > 0
        and (not t.pruners or pruner in t.pruners)
        and (not t.compressions or rho in t.compressions)
    )


def run_stability(
    cfg: StabilityConfig,
    out_dir: str | Path,
    progress: Callable[[str], None] = print,
    *,
    figures_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Run the study of ``cfg``; write ``report.md``, ``metrics.json`` and the PNG plots to ``out_dir``
    (the plots to ``figures_dir`` when given) and return the metrics (``METRICS_KEYS``)."""
    validate_stability(cfg)
    t0 = time.monotonic()
    out = _writable_dir(Path(out_dir))
    figs = _writable_dir(Path(figures_dir)) if figures_dir is not None else out
    needs_data = cfg.training.steps > 0 or any(p in ("snip", "imp", "cs") for p in cfg.pruning.pruners)
    data = _load_data(cfg) if needs_data else None
    model = build_model(cfg.model, 0, bias=cfg.bias)
    ones = Mask.ones(model)
    seeds = list(cfg.init_seeds)

    dense = None
    if cfg.training.steps > 0:
        assert data is not None
        dense = _trained(cfg, [(None, s, s) for s in seeds], data)
        progress(f"dense: test accuracy {pm(dense)} over {len(seeds)} inits")

    results = []
    for pruner in cfg.pruning.pruners:
        for rho in cfg.pruning.compressions:
            t1 = time.monotonic()
            masks = [_prune(cfg, s, pruner, rho, data, cfg.pruning.rounding) for s in seeds]
            res: dict[str, Any] = {"pruner": pruner, "compression": rho}
            res.update(compare_masks(masks, _rng(cfg, "aligned-chance", pruner, rho)))
            res["accuracy"] = None
            if _trains(cfg, pruner, rho):
                assert data is not None
                res["accuracy"] = _accuracy(cfg, masks, _rng(cfg, "accuracy", pruner, rho), data)
            results.append({k: res[k] for k in RESULT_KEYS})
            acc = res["accuracy"]
            progress(
                f"{pruner} ρ={rho:g}: J {pm(res['jaccard'])} (chance {res['chance_jaccard']['mean']:.3f}, "
                f"aligned {pm(res['aligned_jaccard'])}), {res['classes']} classes"
                + (f", acc own {pm(acc['own'])}" if acc else "")
                + f"  [{time.monotonic() - t1:.1f} s]"
            )

    rounding = None
    if cfg.rounding.seeds:
        rounding = rounding_sensitivity(cfg)
        progress(
            f"rounding round vs reference at ρ={cfg.rounding.compression:g}: J {pm(rounding['jaccard'])}, "
            f"cross-seed J {pm(rounding['cross_seed_jaccard'])}"
        )

    metrics = {
        "name": cfg.name,
        "config": to_dict(cfg),
        "model": cfg.model,
        "dataset": cfg.dataset,
        "layers": ones.names,
        "layer_sizes": ones.layer_total(),
        "total_weights": ones.total(),
        "max_compression": max_compression(model),
        "init_seeds": seeds,
        "dense_accuracy": dense,
        "results": results,
        "rounding": rounding,
        "accuracy_split": "test",
        "elapsed_s": 0.0,
    }
    plots = write_plots(metrics, figs)
    metrics["elapsed_s"] = time.monotonic() - t0
    _write(out / "metrics.json", json.dumps(metrics, indent=1, allow_nan=True) + "\n")
    _write(
        out / "report.md", stability_report(metrics, {k: os.path.relpath(p, out) for k, p in plots.items()})
    )
    progress(
        f"wrote {out / 'report.md'}, {out / 'metrics.json'} and {len(plots)} plots in {metrics['elapsed_s']:.0f} s"
    )
    return metrics


def stability_command(config_path: str | Path, out_dir: str | Path) -> None:
    """``lotterysearch stability CONFIG --out DIR``."""
    run_stability(load_stability_config(config_path), out_dir, progress=print)


def compare_given_masks(paths: Sequence[str | Path], seed: int = 0) -> dict[str, Any]:
    """The study's overlap and unit metrics (``compare_masks``) of masks a user brings, one per init: the
    same nulls (layerwise and degree-preserving shuffles), unit counts and bootstrap over inits. Masks must
    have the same layers and shapes; a bad file is a one-line error."""
    if len(paths) < 2:
        raise ConfigError(f"--masks needs two masks or more to compare, got {len(paths)}")
    masks = [Mask.load(p) for p in paths]
    for p, m in zip(paths[1:], masks[1:], strict=True):
        if m.shapes != masks[0].shapes:
            raise ConfigError(f"mask '{p}' has layers {m.shapes}, the first mask {masks[0].shapes}")
    res = compare_masks(masks, np.random.default_rng(seed))
    density = res["density"]["mean"]
    return {
        "masks": [str(p) for p in paths],
        "layers": masks[0].names,
        "init_seeds": list(range(len(masks))),
        "results": [
            {"pruner": "given", "compression": 1 / density if density else math.inf, **res, "accuracy": None}
        ],
    }


def given_masks_report(metrics: Mapping[str, Any]) -> str:
    """The tables of ``compare_given_masks``: overlap with both nulls, then units."""
    return "\n".join(
        [
            f"{len(metrics['masks'])} masks: {', '.join(metrics['masks'])}",
            "",
            overlap_table(metrics),
            "",
            unit_table(metrics),
            "",
            *[f"- {s}" for s in stability_findings(metrics)],
            "",
        ]
    )


def given_masks_command(paths: Sequence[str | Path], out_dir: str | Path | None, seed: int = 0) -> None:
    """``lotterysearch stability --masks A.npz B.npz ... [--out DIR]``: print the tables, and write
    ``report.md`` and ``metrics.json`` to ``DIR`` when given."""
    metrics = compare_given_masks(paths, seed)
    text = given_masks_report(metrics)
    if out_dir is not None:
        out = _writable_dir(Path(out_dir))
        _write(out / "metrics.json", json.dumps(metrics, indent=1, allow_nan=True) + "\n")
        _write(out / "report.md", "# Mask stability: given masks\n\n" + text)
    print(text, end="")


# ---- files ---------------------------------------------------------------------------------------------


def _writable_dir(path: Path) -> Path:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"cannot create output directory '{path}': {e.strerror or e}") from None
    return path


def _write(path: Path, text: str) -> None:
    try:
        path.write_text(text)
    except OSError as e:
        raise ConfigError(f"cannot write '{path}': {e.strerror or e}") from None


# ---- the report ----------------------------------------------------------------------------------------


def overlap_table(metrics: Mapping[str, Any]) -> str:
    rows = [
        (
            r["pruner"],
            f"{r['compression']:g}",
            pm(r["density"], 4),
            pm(r["effective_density"], 4),
            f"{r['collapsed']}/{len(metrics['init_seeds'])}",
            f"{r['classes']}/{len(metrics['init_seeds'])}",
            pm(r["jaccard"]),
            f"{r['chance_jaccard']['mean']:.3f}",
            pm(r["excess_overlap"]),
            pm(r["aligned_jaccard"]),
            pm(r["aligned_chance_jaccard"]),
            pm(r["degree_aligned_chance_jaccard"]),
            _interval(r["aligned_excess_ci"]),
        )
        for r in metrics["results"]
    ]
    header = ["pruner", "ρ", "density", "effective density", "collapsed", "classes", "J raw", "J chance",
              "excess (κ)", "J aligned", "J aligned, layerwise null", "J aligned, degree null",
              "aligned − degree null, 95% CI"]  # fmt: skip
    return markdown_table(header, rows)


def _interval(ci: Sequence[float] | None, digits: int = 3) -> str:
    return "–" if ci is None else f"[{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]"


def unit_table(metrics: Mapping[str, Any]) -> str:
    """Live units per unit layer; live inputs' overlap against chance; aligned hidden units against the
    degree-preserving null."""
    rows = []
    for r in metrics["results"]:
        live = r["live_units"]
        rows.append(
            (
                r["pruner"],
                f"{r['compression']:g}",
                " / ".join(f"{u['mean']:.1f} ± {u['std']:.1f}" for u in live),
                f"{r['input_jaccard']['mean']:.3f} / {r['input_chance_jaccard']['mean']:.3f}",
                " / ".join(
                    f"{a['mean']:.3f} vs {d['mean']:.3f}"
                    for a, d in zip(r["aligned_unit_jaccard"], r["degree_aligned_unit_jaccard"], strict=True)
                ),
                pm(r["effective_density"], 4),
                _measured(r.get("shuffled_effective_density")),
                _measured(r.get("matched_effective_density"))
                + (f" (density {pm(r['matched_density'], 4)})" if "matched_density" in r else ""),
                pm(r["degree_effective_density"], 4),
            )
        )
    header = ["pruner", "ρ", "live units (inputs / hidden … / outputs)", "live inputs J / chance",
              "hidden units J aligned vs degree null", "effective density: mask", "layerwise shuffle",
              "layerwise, effective density matched", "degree null"]  # fmt: skip
    return markdown_table(header, rows)


NOT_MEASURED = "not measured"


def _measured(stat: Mapping[str, float] | None, digits: int = 4) -> str:
    """``mean ± std``, or "not measured" for a quantity a study stored before it was measured."""
    return NOT_MEASURED if stat is None else pm(stat, digits)


def stop_steps(control: Mapping[str, Any], budget: int) -> str:
    """The early-stopping steps of one trained control: their mean and how many stopped before ``budget``."""
    steps = control.get("stop_steps")
    if not steps:
        return NOT_MEASURED if "stop_steps" not in control else "no early stopping"
    before = sum(s < budget for s in steps)
    return f"{np.mean(steps):.0f} ({before}/{len(steps)} before {budget})"


def density_table(metrics: Mapping[str, Any]) -> str:
    layers = metrics["layers"]
    rows = [
        (r["pruner"], f"{r['compression']:g}", *(pm(r["layer_density"][n], 4) for n in layers))
        for r in metrics["results"]
    ]
    return markdown_table(["pruner", "ρ", *layers], rows)


def layer_overlap_table(metrics: Mapping[str, Any]) -> str:
    layers = metrics["layers"]
    rows = [
        (
            r["pruner"],
            f"{r['compression']:g}",
            *(
                f"{r['layer_jaccard'][n]['mean']:.3f} / {r['layer_chance_jaccard'][n]['mean']:.3f}"
                for n in layers
            ),
        )
        for r in metrics["results"]
    ]
    return markdown_table(["pruner", "ρ", *(f"{n}: J / chance" for n in layers)], rows)


def accuracy_table(metrics: Mapping[str, Any]) -> str:
    rows = []
    for r in metrics["results"]:
        a = r["accuracy"]
        if a is None:
            continue
        rows.append(
            (
                r["pruner"],
                f"{r['compression']:g}",
                pm(a["own"]),
                pm(a["other"]),
                pm(a["shuffled"]),
                _measured(a.get("matched_shuffled"), 3),
                pm(a["degree_shuffled"]),
                pm(a["permuted"]) + ("" if a["permuted_same_class"] else " (not isomorphic!)"),
                " / ".join(
                    stop_steps(a[c], metrics["config"]["training"]["steps"]) if c in a else NOT_MEASURED
                    for c in ("own", "other", "shuffled", "matched_shuffled", "degree_shuffled")
                ),
            )
        )
    header = [
        "pruner",
        "ρ",
        "own init",
        "another seed's init",
        "layerwise shuffled",
        "layerwise, effective density matched",
        "degree-preserving shuffled",
        "permuted copies (first seed)",
        "early-stopping step, mean (stopped before the budget): own / another / layerwise / matched / degree",
    ]
    return markdown_table(header, rows) if rows else ""


def rounding_table(rounding: Mapping[str, Any]) -> str:
    rows = [(p["seed"], f"{p['jaccard']:.3f}", f"{p['aligned_jaccard']:.3f}") for p in rounding["per_seed"]]
    return markdown_table(["seed", "J(round, reference)", "aligned J(round, reference)"], rows)


def stability_findings(metrics: Mapping[str, Any]) -> list[str]:
    """Sentences generated from the numbers: the Findings of ``report.md``."""
    n = len(metrics["init_seeds"])
    out = []
    for r in metrics["results"]:
        j, c, al, alc = r["jaccard"], r["chance_jaccard"], r["aligned_jaccard"], r["aligned_chance_jaccard"]
        if j["mean"] >= 1 - 1e-12:
            same = "all identical"
        elif abs(r["excess_overlap"]["mean"]) < 0.05:
            same = "no more alike than chance (|κ| < 0.05)"
        else:
            same = "above chance but far from identical" if j["mean"] < 0.5 else "similar but not identical"
        s = (
            f"{r['pruner']} at ρ = {r['compression']:g}: the {n} masks are {same} "
            f"(raw J = {pm(j)} vs {c['mean']:.3f} by chance, κ = {pm(r['excess_overlap'])}); "
            f"aligning hidden units gives J = {pm(al)} vs {alc['mean']:.3f} for aligned layerwise-shuffled "
            f"and {r['degree_aligned_chance_jaccard']['mean']:.3f} for aligned degree-preserving shuffled "
            f"masks (difference, 95% CI over inits: {_interval(r['aligned_excess_ci'])}); live units "
            f"{' / '.join(format(u['mean'], '.0f') for u in r['live_units'])}; "
            f"{r['classes']} isomorphism class{'es' if r['classes'] != 1 else ''} among {n}"
        )
        a = r["accuracy"]
        if a is not None:
            s += (
                f"; accuracy own init {pm(a['own'])}, another init {pm(a['other'])}, "
                f"shuffled positions {pm(a['shuffled'])}, layerwise random at the mask's effective "
                f"density {_measured(a.get('matched_shuffled'), 3)}, degree-preserving shuffle "
                f"{pm(a['degree_shuffled'])}, isomorphic copies {pm(a['permuted'])}"
            )
        out.append(s + ".")
    rnd = metrics.get("rounding")
    if rnd:
        js = [p["jaccard"] for p in rnd["per_seed"]]
        out.append(
            f"Rounding rule alone (SynFlow, ρ = {rnd['compression']:g}, {rnd['iterations']} iterations, one "
            f"init each): the two rules keep different counts in {rnd['schedule_steps_differing']} of "
            f"{rnd['iterations']} steps (at most {rnd['schedule_max_difference']} weight apart), and the "
            f"final masks overlap with J = {pm(rnd['jaccard'])} (range {min(js):.2f} to {max(js):.2f} over "
            f"seeds {', '.join(str(p['seed']) for p in rnd['per_seed'])}), against "
            f"J = {pm(rnd['cross_seed_jaccard'])} between inits (chance {rnd['cross_seed_chance_jaccard']['mean']:.3f})."
        )
    return out


def stability_report(metrics: Mapping[str, Any], plots: Mapping[str, str]) -> str:
    """``report.md`` of one run: tables, plots (paths relative to the report) and the generated findings."""
    cfg = metrics["config"]
    dense = metrics["dense_accuracy"]
    parts = [
        f"# Mask stability: {metrics['name']}",
        "",
        f"Model `{metrics['model']}` (bias: {str(cfg['bias']).lower()}, {metrics['total_weights']} prunable "
        f"weights, ρ_max = {metrics['max_compression']:g}) on `{metrics['dataset']}`; init seeds "
        f"{', '.join(map(str, metrics['init_seeds']))}; pruning iterations "
        f"{cfg['pruning']['iterations'] or 'default (synflow 100, others 1)'}, rounding "
        f"`{cfg['pruning']['rounding']}`. Mean ± std (sample, ddof 1) over the "
        f"{len(metrics['init_seeds']) * (len(metrics['init_seeds']) - 1) // 2} seed pairs or "
        f"{len(metrics['init_seeds'])} seeds. Runtime {metrics['elapsed_s']:.0f} s.",
        "",
        "J is the Jaccard overlap |A∩B|/|A∪B| of kept weights. *J chance* is the expected Jaccard of two "
        "independent random masks with the same per-layer kept counts (exact, from the hypergeometric "
        "distribution of each layer's intersection, E|A∩B| = Σ a_l·b_l/n_l). κ = (J − J chance)/(1 − J "
        "chance). *J aligned* relabels the second mask's hidden units (neurons, a convnet's channels) to best "
        "match the first; the *layerwise null* does the same for two layerwise-shuffled copies (per-layer "
        "counts kept, degrees evened out), the *degree null* for two degree-preserving shuffles (every "
        "unit's in- and out-degree kept: the null that fits uneven degrees); its 95% interval is a "
        "bootstrap over inits, not pairs. *classes*: distinct isomorphism classes of the effective "
        "subnetworks among the seeds.",
        "",
        "## Findings",
        "",
        *[f"- {s}" for s in stability_findings(metrics)],
        "",
        "## Overlap across initializations",
        "",
        overlap_table(metrics),
        "",
    ]
    if "overlap" in plots:
        parts += [f"![overlap vs compression]({plots['overlap']})", ""]
    parts += [
        "## Units",
        "",
        "Live units lie on an input→output path of the effective subnetwork. Inputs have fixed identities, "
        "so which are live is compared with the Jaccard of random sets of the same sizes; hidden units are "
        "exchangeable under an i.i.d. init, so they are compared after alignment, against aligned "
        "degree-preserving shuffles.",
        "",
        unit_table(metrics),
        "",
        "### Per layer: J / chance J",
        "",
        layer_overlap_table(metrics),
        "",
        "## Per-layer densities",
        "",
    ]
    parts += [density_table(metrics), ""]
    if "layer_density" in plots:
        parts += [f"![per-layer density per seed]({plots['layer_density']})", ""]
    acc = accuracy_table(metrics)
    if acc:
        t = cfg["training"]
        parts += [
            "## Accuracy",
            "",
            f"Test accuracy after {t['steps']} steps ({t['optimizer']}, lr {t['lr']:g}, batch "
            f"{t['batch_size']}, mode `{t['mode']}`). Dense: {pm(dense)}. *own init*: mask of seed s "
            "trained from the init of s; *another seed's init*: from the next seed's init; *layerwise "
            "shuffled*: same per-layer counts, random positions, own init; *effective density matched*: "
            "layerwise-random positions with every layer's count scaled by one common factor until the "
            "effective density reaches the mask's (a shuffle strands weights off every path), own init; "
            "*degree-preserving*: every unit's in- and out-degree kept, own init; *permuted copies*: "
            f"{t['permuted_copies']} random relabellings of the first seed's hidden units (isomorphic), "
            "all from the first seed's init and batch order: their spread is the noise an isomorph adds.",
            "",
            acc,
            "",
        ]
        if "accuracy" in plots:
            parts += [f"![accuracy]({plots['accuracy']})", ""]
    rnd = metrics.get("rounding")
    if rnd:
        parts += [
            "## Sensitivity to the rounding rule",
            "",
            f"SynFlow at ρ = {rnd['compression']:g} with {rnd['iterations']} iterations on one init: "
            "`round` keeps round(N·s_k) weights at step k, `reference` keeps N − int((1 − s_k)·N) (the "
            f"authors' code). The schedules differ in {rnd['schedule_steps_differing']} of "
            f"{rnd['iterations']} steps (by at most {rnd['schedule_max_difference']}); final kept "
            f"{rnd['final_kept']['round']} vs {rnd['final_kept']['reference']}. Beside it, the overlap "
            f"between different inits (same seeds, rule `round`): J = {pm(rnd['cross_seed_jaccard'])}, "
            f"aligned {pm(rnd['cross_seed_aligned_jaccard'])}, chance "
            f"{rnd['cross_seed_chance_jaccard']['mean']:.3f}.",
            "",
            rounding_table(rnd),
            "",
        ]
    return "\n".join(parts)


# ---- plots ---------------------------------------------------------------------------------------------

_COLORS = {"raw": "#1f77b4", "aligned": "#d62728", "chance": "#555555", "aligned_chance": "#ff9896"}


def _by_pruner(metrics: Mapping[str, Any]) -> dict[str, list[Mapping[str, Any]]]:
    out: dict[str, list[Mapping[str, Any]]] = {}
    for r in metrics["results"]:
        out.setdefault(r["pruner"], []).append(r)
    for rows in out.values():
        rows.sort(key=lambda r: r["compression"])
    return out


def overlap_figure(metrics: Mapping[str, Any]) -> Figure:
    """Jaccard vs ρ per pruner: raw and aligned (mean ± std over pairs), their chance levels, and the
    rounding-rule overlap on the SynFlow panel."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import NullLocator

    groups = _by_pruner(metrics)
    fig = Figure(figsize=(4.0 * len(groups) + 0.6, 4.2), dpi=110, layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(groups), sharey=True))
    for ax, (pruner, rows) in zip(axes, groups.items(), strict=True):
        x = [r["compression"] for r in rows]

        def line(
            key: str, style: str, label: str, color: str, zorder: int = 3, rows=rows, x=x, ax=ax
        ) -> None:  # noqa: ANN001
            m = np.array([r[key]["mean"] for r in rows])
            s = np.array([r[key]["std"] for r in rows])
            ax.plot(x, m, style, color=color, label=label, lw=1.8, ms=5, zorder=zorder)
            ax.fill_between(x, m - s, m + s, color=color, alpha=0.15, lw=0)

        line("jaccard", "o-", "raw", _COLORS["raw"])
        line("aligned_jaccard", "s--", "aligned", _COLORS["aligned"])
        line("chance_jaccard", ":", "chance (same per-layer counts)", _COLORS["chance"], zorder=4)
        line("aligned_chance_jaccard", "-.", "aligned chance (shuffled)", _COLORS["aligned_chance"])
        rnd = metrics.get("rounding")
        if rnd and pruner == "synflow":
            ax.errorbar(
                [rnd["compression"]], [rnd["jaccard"]["mean"]], yerr=[rnd["jaccard"]["std"]], fmt="D",
                color="#2ca02c", ms=7, capsize=3, label="same init, round vs reference",
            )  # fmt: skip
        ax.set_xscale("log")
        ax.set_xticks(x, [f"{v:g}" for v in x])
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_ylim(0, 1.02)
        ax.set_title(pruner)
        ax.set_xlabel("compression ρ (log)")
        ax.grid(True, which="major", alpha=0.3)
    axes[0].set_ylabel(f"Jaccard of kept weights (mean ± std, {len(metrics['init_seeds'])} seeds)")
    handles, labels = [], []
    for ax in axes:  # the SynFlow panel may carry the extra rounding marker
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    fig.legend(handles, labels, loc="outside lower center", ncol=len(labels), fontsize=8.5)
    fig.suptitle(f"Overlap of masks across initializations: {metrics['model']} on {metrics['dataset']}")
    return fig


def layer_density_figure(metrics: Mapping[str, Any]) -> Figure:
    """Per-layer density, one thin line per seed, one colour per ρ, one panel per pruner."""
    from matplotlib import colormaps
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    groups = _by_pruner(metrics)
    layers = metrics["layers"]
    rhos = sorted({r["compression"] for r in metrics["results"]})
    cmap = colormaps["viridis"]
    color = {rho: cmap(0.9 * i / max(len(rhos) - 1, 1)) for i, rho in enumerate(rhos)}
    fig = Figure(figsize=(3.6 * len(groups) + 0.6, 4.2), dpi=110, layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(groups), sharey=True))
    xs = np.arange(len(layers))
    floor = 0.5 / max(metrics["layer_sizes"].values())  # where an empty layer is drawn (log axis)
    any_empty = False
    for ax, (pruner, rows) in zip(axes, groups.items(), strict=True):
        for r in rows:
            per_seed = np.array([r["layer_density"][n]["per_seed"] for n in layers]).T  # [seed, layer]
            c = color[r["compression"]]
            for k, d in enumerate(per_seed):
                x = xs + (k - (len(per_seed) - 1) / 2) * 0.03
                ax.plot(x, np.maximum(d, floor), "o-", color=c, lw=0.8, ms=3.5, alpha=0.75)
                empty = d == 0
                if empty.any():
                    any_empty = True
                    ax.plot(x[empty], np.full(empty.sum(), floor), "x", color="black", ms=7, mew=1.5)
            ax.axhline(1 / r["compression"], color=c, lw=0.8, ls=":", alpha=0.8)
        ax.set_xticks(xs, [f"{n}\n{metrics['layer_sizes'][n]}" for n in layers])
        ax.set_yscale("log")
        ax.set_title(pruner)
        ax.grid(True, which="major", alpha=0.3)
    axes[0].set_ylabel("layer density (kept / layer size, log)")
    handles = [Line2D([], [], color=color[r], marker="o", label=f"ρ = {r:g}") for r in rhos]
    handles.append(Line2D([], [], color="gray", ls=":", label="overall density 1/ρ"))
    if any_empty:
        handles.append(Line2D([], [], color="black", marker="x", ls="", mew=1.5, label="empty layer (0)"))
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), fontsize=8.5)
    fig.suptitle(
        f"Per-layer densities, one line per init seed ({len(metrics['init_seeds'])} seeds): {metrics['model']}"
    )
    return fig


def accuracy_figure(metrics: Mapping[str, Any]) -> Figure:
    """Test accuracy per pruner and ρ: own init, another init, shuffled, permuted copies (mean ± std)."""
    from matplotlib.figure import Figure

    rows = [r for r in metrics["results"] if r["accuracy"] is not None]
    kinds = [("own", "own init", "#1f77b4"), ("other", "another seed's init", "#ff7f0e"),
             ("shuffled", "layerwise shuffled", "#7f7f7f"),
             ("matched_shuffled", "layerwise, effective density matched", "#bcbd22"),
             ("degree_shuffled", "degree-preserving shuffled", "#9467bd"),
             ("permuted", "permuted copies", "#2ca02c")]  # fmt: skip
    kinds = [k for k in kinds if all(k[0] in r["accuracy"] for r in rows)]
    fig = Figure(figsize=(max(7.0, 1.4 * len(rows) + 2), 4.6), dpi=110, layout="constrained")
    ax = fig.subplots()
    width = 0.8 / len(kinds)
    xs = np.arange(len(rows))
    for k, (key, label, c) in enumerate(kinds):
        m = [r["accuracy"][key]["mean"] for r in rows]
        s = [r["accuracy"][key]["std"] for r in rows]
        ax.bar(xs + (k - (len(kinds) - 1) / 2) * width, m, width, yerr=s, color=c, label=label, capsize=2)
    dense = metrics.get("dense_accuracy")
    if dense:
        ax.axhline(dense["mean"], color="black", ls="--", lw=1, label=f"dense {dense['mean']:.3f}")
    ax.set_xticks(xs, [f"{r['pruner']}\nρ={r['compression']:g}" for r in rows], fontsize=8.5)
    ax.set_ylabel(f"{metrics['accuracy_split']} accuracy (mean ± std)")
    ax.set_ylim(0, 1)
    ax.grid(True, axis="y", alpha=0.3)
    fig.legend(loc="outside lower center", fontsize=8.5, ncol=4)
    ax.set_title(f"Accuracy of masks and controls: {metrics['model']} on {metrics['dataset']}")
    return fig


def write_plots(metrics: Mapping[str, Any], directory: Path, prefix: str | None = None) -> dict[str, Path]:
    """Write ``overlap.png``, ``layer_density.png`` and (when trained) ``accuracy.png``; returns the paths."""
    prefix = f"{metrics['name']}_" if prefix is None else prefix
    figures = {"overlap": overlap_figure(metrics), "layer_density": layer_density_figure(metrics)}
    if any(r["accuracy"] is not None for r in metrics["results"]):
        figures["accuracy"] = accuracy_figure(metrics)
    paths = {}
    for key, fig in figures.items():
        path = directory / f"{prefix}{key}.png"
        try:
            fig.savefig(path)
        except OSError as e:
            raise ConfigError(f"cannot write '{path}': {e.strerror or e}") from None
        paths[key] = path
    return paths
