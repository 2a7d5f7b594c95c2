"""Benchmark: fitness evaluations per second, the project's evaluator path against a naive loop.

For ``mlp:40-100-100-10`` on MNIST-1D and LeNet-300-100 (``mlp:784-300-100-10``) on MNIST, at densities 20%,
5% and 1% (SynFlow masks from several init seeds plus move-mutated copies: what a search evaluates), with the
default ``FitnessConfig`` (115 steps of Adam, batch 128, one init seed):

* (a) naive: a Python loop calling ``training.train`` on one masked network at a time, in this process,
  with torch's default threads;
* (b) evaluators: ``EvaluatorPool`` through a local Ray with every core (one evaluator per CPU, one torch
  thread each), populations and compaction chosen per mask by ``fitness``;
* the ratio b/a, the dense-equivalent arithmetic of (b) (a dense run's flops: 6·B·Σ in·out a step plus the
  validation pass) and its share of this machine's dense matmul FLOP/s, measured here first.

Before that, per-step kernel timings for LeNet-300-100 (forward and backward, B = 128) of the three ways to
train a masked layer: dense masked matmul, CSR (``torch.sparse.mm``; ``sampled_addmm`` for the weight
gradient), and exact compaction (dense on the smaller network), for SynFlow and random masks; and which one
the MLP family's fitness plan picks (``family.ModelFamily.plan``).

Each of (a) and (b) is the best of two passes over the masks (one with ``--quick``): the machine is shared.
``--threads-split`` also times the other way to use every core: one evaluator with all of them.

Convnets (``--only conv`` runs these alone): the same rows (a) and (b) for the MNIST-1D CNN
(``cnn1d:40:25k5-25-25:10``, default fitness) and Conv-2 on digits' 8×8 images (``conv2:8x8x1``, 30 steps),
and before them the measurement behind the convnet family's K (``family.ConvFamily``): networks trained per
second on one thread by a loop over ``training.train`` and by one batch of K (``ConvBatch``) for K = 1 … 16,
for those two and a small ``conv:8x8x1:8-8-M:32-10``.

Goals (this 2-core machine): b/a >= 4 for the MNIST-1D MLP, >= 2 for LeNet-300-100 at <= 5% density.

    python benchmarks/fitness.py [--quick] [--data-dir DIR (default $LOTTERYSEARCH_DATA)] [--threads-split]
        [--only mlp|conv] [--densities D ...] [--no-k-table]
"""

from __future__ import annotations

import argparse
import os
import time
import warnings
from collections import Counter

import numpy as np
import torch
from benchtools import best_of

from lotterysearch.core.data import load_dataset
from lotterysearch.core.masks import Mask, layerwise_shuffle
from lotterysearch.core.models import build_model
from lotterysearch.evolution.operators import move_mutation
from lotterysearch.pruning.pruners import prune
from lotterysearch.settings import FitnessConfig, RayConfig, TrainingConfig
from lotterysearch.training.batched import train_batch
from lotterysearch.training.batched_conv import ConvBatch
from lotterysearch.training.compaction import compact_mask, compaction, work
from lotterysearch.training.family import CONV_FAMILY, MLP_FAMILY, family_of
from lotterysearch.training.trainer import train

CASES = [("mlp:40-100-100-10", "mnist1d"), ("mlp:784-300-100-10", "mnist")]
# convnet, dataset, training steps of the fitness (Conv-2's step is 2e9 flops: a short proxy)
CONV_CASES = [("cnn1d:40:25k5-25-25:10", "mnist1d", 115), ("conv2:8x8x1", "digits", 30)]
CONV_KS = (1, 2, 4, 8, 12, 16)
CONV_K_CASES = [  # convnet, dataset, steps, the Ks timed (Conv-2's im2col columns: 19 MB a network)
    ("cnn1d:40:25k5-25-25:10", "mnist1d", 40, CONV_KS),
    ("conv:8x8x1:8-8-M:32-10", "digits", 40, CONV_KS),
    ("conv2:8x8x1", "digits", 5, (1, 2, 4)),
]
DENSITIES = (0.2, 0.05, 0.01)
B = 128
MODE = "forward"  # the search default (``SearchConfig.mode``)


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def matmul_flops(threads: int, n: int = 2048) -> float:
    """Dense float32 matmul FLOP/s with ``threads`` torch threads (best of 5)."""
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        a, b = torch.randn(n, n), torch.randn(n, n)
        return 2 * n**3 / best_of(5, lambda: a @ b, warm_up=True)
    finally:
        torch.set_num_threads(old)


def search_masks(spec: str, density: float, n: int) -> list[Mask]:
    """SynFlow masks from init seeds 0..3 at ``density``, then move-mutated copies (5% of each layer moved)."""
    seeds = [prune(build_model(spec, s), "synflow", 1 / density, seed=s) for s in range(min(4, n))]
    rng = np.random.default_rng(0)
    masks = list(seeds)
    while len(masks) < n:
        masks.append(move_mutation(seeds[len(masks) % len(seeds)], rng, 0.05))
    return masks


# ---- kernels: one training step of LeNet-300-100, three ways ----------------------------------------------
def dense_step(ws, ms, bs, x):  # noqa: ANN001, ANN201
    """Forward and backward of the dense masked network (what ``MLPBatch`` does with K = 1)."""
    used = [w * m for w, m in zip(ws, ms, strict=True)]
    hs, h = [x], x
    for i, (w, b) in enumerate(zip(used, bs, strict=True)):
        h = torch.addmm(b, h, w.t())
        if i < len(used) - 1:
            h = h.relu_()
            hs.append(h)
    return used, hs, h


def dense_backward(used, ms, hs, delta) -> None:  # noqa: ANN001
    for i in range(len(used) - 1, -1, -1):
        (delta.t() @ hs[i]).mul_(ms[i])
        delta.sum(0)
        if i:
            delta = (delta @ used[i]).mul_(hs[i] > 0)


def csr_layers(ws, ms):  # noqa: ANN001, ANN201
    layers = []
    for w, m in zip(ws, ms, strict=True):
        wm = w * m
        layers.append((wm.to_sparse_csr(), wm.t().contiguous().to_sparse_csr()))
    return layers


def csr_forward(layers, bs, x):  # noqa: ANN001, ANN201
    hs, h = [x], x
    for i, ((w, _), b) in enumerate(zip(layers, bs, strict=True)):
        h = torch.sparse.mm(w, h.t()).t() + b
        if i < len(layers) - 1:
            h = h.relu_()
            hs.append(h)
    return hs, h


def csr_backward(layers, hs, delta) -> None:  # noqa: ANN001
    for i in range(len(layers) - 1, -1, -1):
        w, wt = layers[i]
        torch.sparse.sampled_addmm(w, delta.t().contiguous(), hs[i], beta=0.0)  # weight gradient at the nnz
        delta.sum(0)
        if i:
            delta = torch.sparse.mm(wt, delta.t()).t().mul_(hs[i] > 0)


def kernel_table(repeats: int) -> None:
    spec = "mlp:784-300-100-10"
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(B, 784, generator=g)
    delta = torch.randn(B, 10, generator=g)
    print(
        f"\nKernels: one step of LeNet-300-100 at B = {B}, one thread, ms (best of {repeats}); load {load()}"
    )
    header = (
        f"{'mask':<14} {'compacted widths':>20} {'work':>6}  {'dense fwd':>9} {'bwd':>6}  {'CSR fwd':>8}"
        f" {'bwd':>6}  {'compact fwd':>11} {'bwd':>6}  {'fastest':>8}  {'plan':>14}"
    )
    print(header + "\n" + "-" * len(header))
    for density in DENSITIES:
        syn = prune(build_model(spec, 0), "synflow", 1 / density)
        for name, mask in [("synflow", syn), ("random", layerwise_shuffle(syn, np.random.default_rng(0)))]:
            model = build_model(spec, 0)
            ws = [layer.weight.detach() for layer in model.layers.values()]
            bs = [layer.bias.detach() for layer in model.layers.values()]
            ms = [mask[n].float() for n in mask.names]
            used, hs, _ = dense_step(ws, ms, bs, x)
            t_df = best_of(repeats, lambda ws=ws, ms=ms, bs=bs: dense_step(ws, ms, bs, x), warm_up=True)
            t_db = best_of(
                repeats, lambda u=used, ms=ms, hs=hs: dense_backward(u, ms, hs, delta), warm_up=True
            )
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "sparse CSR support is in beta"
                layers = csr_layers(ws, ms)
                chs, _ = csr_forward(layers, bs, x)
                t_cf = best_of(repeats, lambda la=layers, bs=bs: csr_forward(la, bs, x), warm_up=True)
                t_cb = best_of(repeats, lambda la=layers, h=chs: csr_backward(la, h, delta), warm_up=True)
            comp = compaction(mask)
            small, small_mask = MLP_FAMILY.compact_model(model, comp), compact_mask(mask, comp)
            sws = [layer.weight.detach() for layer in small.layers.values()]
            sbs = [layer.bias.detach() for layer in small.layers.values()]
            sms = [small_mask[n].float() for n in small_mask.names]
            inputs = comp.inputs

            def compact_fwd(sws=sws, sms=sms, sbs=sbs, inputs=inputs):  # noqa: ANN001, ANN202
                return dense_step(sws, sms, sbs, x[:, inputs])

            sused, shs, _ = compact_fwd()
            t_pf = best_of(repeats, compact_fwd, warm_up=True)
            t_pb = best_of(
                repeats, lambda u=sused, ms=sms, hs=shs: dense_backward(u, ms, hs, delta), warm_up=True
            )
            totals = {"dense": t_df + t_db, "CSR": t_cf + t_cb, "compact": t_pf + t_pb}
            fastest = min(totals, key=totals.get)
            w_share = work(model, comp) / work(model)
            kernel = MLP_FAMILY.plan(mask, model, "forward", B).kernel
            print(
                f"{name + f' {100 * density:g}%':<14} {'-'.join(map(str, comp.widths)):>20} {w_share:>6.2f}"
                f"  {t_df * 1e3:>9.3f} {t_db * 1e3:>6.3f}  {t_cf * 1e3:>8.3f} {t_cb * 1e3:>6.3f}"
                f"  {t_pf * 1e3:>11.3f} {t_pb * 1e3:>6.3f}  {fastest:>8}  {kernel:>14}"
            )
    torch.set_num_threads(os.cpu_count() or 1)


# ---- throughput: naive loop against the evaluators ----------------------------------------------------------
def naive(masks: list[Mask], spec: str, data, cfg: FitnessConfig, rounds: int) -> float:  # noqa: ANN001
    """Evaluations per second of a loop over ``training.train``, default torch threads (best of ``rounds``)."""
    train(
        build_model(spec, 0), masks[0], data, TrainingConfig(steps=2), seed=0
    )  # warm-up (imports, allocator)
    best = 0.0
    for _ in range(rounds):
        t0 = time.perf_counter()
        for mask in masks:
            for seed in cfg.init_seeds:
                train(build_model(spec, seed), mask, data, cfg.training(), mode=MODE, seed=seed)
        best = max(best, len(masks) / (time.perf_counter() - t0))
    return best


def evaluators(
    masks: list[Mask],
    spec: str,
    data,  # noqa: ANN001
    cfg: FitnessConfig,
    rounds: int,
    cpus_per_eval: float = 1.0,
) -> tuple[float, int]:
    """Evaluations per second through a warm ``EvaluatorPool`` (best of ``rounds``), and the largest
    population it trained at once."""
    from lotterysearch.execution.cluster import EvaluatorPool

    shapes = masks[0].shapes
    best, k = 0.0, 0
    with EvaluatorPool(data, spec, cfg, ray=RayConfig(cpus_per_eval=cpus_per_eval)) as pool:
        pool.warm_up(timeout=300)
        list(pool.evaluate([(f"warm{i}", m.pack()) for i, m in enumerate(masks[:2])], shapes))
        for r in range(rounds):
            t0 = time.perf_counter()
            results = list(pool.evaluate([(f"{r}-{i}", m.pack()) for i, m in enumerate(masks)], shapes))
            best = max(best, len(masks) / (time.perf_counter() - t0))
            k = max(k, *(res.batch for res in results))
    return best, k


def throughput_row(
    label: str,
    density: float,
    masks: list[Mask],
    kernels: Counter,
    spec: str,
    data,  # noqa: ANN001
    cfg: FitnessConfig,
    rounds: int,
    flops_per_eval: float,
    peak: float,
) -> tuple[float, float]:
    """Measure (a) ``naive`` and (b) ``evaluators`` on ``masks`` and print the table's row (MLP and convnet
    rows alike: ``kernels`` counts the masks' kernels); (a) and (b) in evaluations per second."""
    mix = " ".join(f"{n} {k}" for k, n in sorted(kernels.items()))
    a = naive(masks, spec, data, cfg, rounds)
    b, k = evaluators(masks, spec, data, cfg, rounds)
    flops = b * flops_per_eval
    print(
        f"{label:<20} {100 * density:>6g}% {len(masks):>5} {mix:>22} {a:>10.2f} {b:>10.2f} {k:>3}"
        f" {b / a:>6.2f} {flops / 1e9:>11.1f} {flops / peak:>6.1%}",
        flush=True,
    )
    return a, b


def dense_flops(model: torch.nn.Module, n_val: int, cfg: FitnessConfig) -> float:
    """Flops of one evaluation as a dense run does them: 6·B·work a step, 2·N_val·work for validation."""
    w = work(model)
    return len(cfg.init_seeds) * (6 * cfg.batch_size * w * cfg.steps + 2 * n_val * w)


# ---- convnets: how many to batch, then throughput ------------------------------------------------------
def conv_k_row(spec: str, dataset: str, steps: int, ks: tuple[int, ...], repeats: int) -> str:
    """One row of ``conv_k_table``: the loop's networks per second, then each K's and its ratio."""
    data = load_dataset(dataset, 0)
    training = TrainingConfig(steps=steps)
    template = build_model(spec, 0)
    g = torch.Generator().manual_seed(0)
    shapes = Mask.ones(template).shapes
    masks = [Mask({n: torch.rand(sh, generator=g) < 0.1 for n, sh in shapes.items()}) for _ in range(4)]

    def loop() -> None:
        for m in masks:
            train(build_model(spec, 0), m, data, training, seed=0)

    def batch(k: int) -> None:
        train_batch(ConvBatch([template] * k, [masks[j % len(masks)] for j in range(k)]), data, training)

    alone = len(masks) / best_of(repeats, loop, warm_up=True)
    cells = []
    for k in CONV_KS:
        rate = k / best_of(repeats, lambda k=k: batch(k), warm_up=True) if k in ks else None
        cells.append(f"{rate:>6.2f} {rate / alone:>4.2f}x" if rate is not None else f"{'-':>11}")
    chosen = CONV_FAMILY.networks_per_batch(template, training.batch_size)
    return f"{spec:<26} {steps:>5} {alone:>10.2f}  " + "  ".join(cells) + f"  {chosen:>8}"


def conv_k_table(repeats: int) -> None:
    """Networks per second on one thread: a loop over ``train`` against one ``ConvBatch`` of K."""
    torch.set_num_threads(1)
    print(f"\nConvnets: networks trained per second on one thread, 10% random masks (best of {repeats})")
    header = f"{'network':<26} {'steps':>5} {'loop net/s':>10}  " + "  ".join(
        f"{'K=' + str(k):>11}" for k in CONV_KS
    )
    print(header + f"  {'chosen K':>8}\n" + "-" * (len(header) + 10), flush=True)
    for spec, dataset, steps, ks in CONV_K_CASES:
        print(conv_k_row(spec, dataset, steps, ks, repeats), flush=True)
    torch.set_num_threads(os.cpu_count() or 1)


def conv_rows(args: argparse.Namespace, peak: float, rounds: int) -> list[tuple[str, float, float]]:
    counts = {"mnist1d": 8 if args.quick else 32, "digits": 4 if args.quick else 8}
    rows = []
    for spec, dataset, steps in CONV_CASES:
        cfg = FitnessConfig(steps=steps)
        data = load_dataset(dataset, 0)
        template = build_model(spec, 0)
        for density in args.densities:
            masks = search_masks(spec, density, counts[dataset])
            plans = Counter(family_of(spec).plan(m, template, MODE, cfg.batch_size).kernel for m in masks)
            per_eval = dense_flops(template, len(data.y_val), cfg)
            a, b = throughput_row(
                f"{spec} ({steps})", density, masks, plans, spec, data, cfg, rounds, per_eval, peak
            )
            rows.append((spec, density, b / a))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer masks and repeats (a minute or two)")
    parser.add_argument(
        "--data-dir",
        default=os.environ.get("LOTTERYSEARCH_DATA"),
        help="MNIST IDX files (default $LOTTERYSEARCH_DATA)",
    )
    parser.add_argument("--threads-split", action="store_true", help="also one evaluator with every core")
    parser.add_argument("--only", choices=("mlp", "conv"), help="only the MLP rows or only the convnet rows")
    parser.add_argument(
        "--densities",
        type=float,
        nargs="+",
        default=list(DENSITIES),
        help="mask densities of the convnet rows",
    )
    parser.add_argument("--no-k-table", action="store_true", help="skip the convnets' K measurement")
    args = parser.parse_args()
    if not args.data_dir and args.only != "conv":
        parser.error("the LeNet-300-100 cases need MNIST: pass --data-dir DIR or set LOTTERYSEARCH_DATA")
    import ray

    from lotterysearch.execution.cluster import connect

    cores = os.cpu_count() or 1
    print(
        f"{cores} cores, torch {torch.__version__}, default torch threads {torch.get_num_threads()}; load {load()}"
    )
    peak, peak1 = matmul_flops(torch.get_num_threads()), matmul_flops(1)
    print(
        f"dense matmul (2048^2, float32): {peak / 1e9:.1f} GFLOP/s all threads, {peak1 / 1e9:.1f} one thread"
    )
    rounds = 1 if args.quick else 2
    if args.only != "mlp" and not args.no_k_table:
        conv_k_table(repeats=rounds)
    if args.only != "conv":
        kernel_table(repeats=5 if args.quick else 20)

    counts = {"mnist1d": 24 if args.quick else 48, "mnist": 4 if args.quick else 12}
    cfg = FitnessConfig()
    connect(num_cpus=cores)
    rows = []
    print(
        f"\nThroughput: default FitnessConfig ({cfg.steps} steps, {cfg.optimizer}, B = {cfg.batch_size},"
        f" init seeds {list(cfg.init_seeds)}); (a) naive loop, {torch.get_num_threads()} threads; (b) {cores}"
        " evaluators through Ray, 1 thread each"
    )
    header = (
        f"{'network':<20} {'density':>7} {'masks':>5} {'kernels':>22} {'(a) eval/s':>10} {'(b) eval/s':>10}"
        f" {'K':>3} {'b/a':>6} {'(b) GFLOP/s':>11} {'share':>6}"
    )
    print(header + "\n" + "-" * len(header), flush=True)
    for spec, dataset in CASES if args.only != "conv" else []:
        data = load_dataset(dataset, 0, data_dir=args.data_dir)
        template = build_model(spec, 0)
        for density in DENSITIES:
            masks = search_masks(spec, density, counts[dataset])
            kernels = Counter(family_of(spec).plan(m, template, MODE, cfg.batch_size).kernel for m in masks)
            per_eval = dense_flops(template, len(data.y_val), cfg)
            a, b = throughput_row(spec, density, masks, kernels, spec, data, cfg, rounds, per_eval, peak)
            rows.append((spec, density, b / a))
            if args.threads_split:
                b2, k2 = evaluators(masks, spec, data, cfg, rounds, cpus_per_eval=cores)
                print(
                    f"{'  1 evaluator x ' + str(cores) + ' threads':<52} {'':>10} {b2:>10.2f} {k2:>3} {b2 / a:>6.2f}"
                )
    if args.only != "mlp":
        print("convnets (training steps in brackets):", flush=True)
        rows += conv_rows(args, peak, rounds)
    ray.shutdown()
    print(f"\nload average at the end: {load()}")
    mlp = [r for s, _, r in rows if s.startswith("mlp:40")]
    lenet = [r for s, d, r in rows if s.startswith("mlp:784") and d <= 0.05]
    if args.only != "conv":
        print(f"goal b/a >= 4 for mlp:40-100-100-10: worst {min(mlp):.2f}")
        print(f"goal b/a >= 2 for LeNet-300-100 at <= 5% density: worst {min(lenet):.2f}")
    print("timings are wall-clock on a shared machine: noisy; rerun on a quiet one for the record.")


if __name__ == "__main__":
    main()
