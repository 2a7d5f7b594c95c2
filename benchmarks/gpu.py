"""CUDA check: the fitness path on a GPU against the CPU path, in one process (needs a CUDA device).

Evaluates 28 masks of ``mlp:40-100-100-10`` on MNIST-1D with the default ``FitnessConfig``: SynFlow masks at
10%, and SynFlow masks with move-mutated copies at 20%, 5% and 1%. For each device it prints evaluations per
second of ``evaluate_masks`` (populations, fixed K on CUDA) and of ``evaluate_mask`` one at a time, whether
the two agree bit for bit (what keeps a resumed search exact), and how far CUDA's accuracies are from the
CPU's. The CPU baseline is the same code with CUDA hidden, one torch thread (one evaluator's share).

    python benchmarks/gpu.py
"""

from __future__ import annotations

import sys
import time

import numpy as np
import torch

from lotterysearch.core.data import load_dataset
from lotterysearch.core.masks import Mask
from lotterysearch.core.models import build_model
from lotterysearch.evolution.operators import move_mutation
from lotterysearch.pruning.pruners import prune
from lotterysearch.settings import FitnessConfig
from lotterysearch.training.fitness import Objectives, evaluate_mask, evaluate_masks

SPEC = "mlp:40-100-100-10"


def masks() -> list[Mask]:
    rng = np.random.default_rng(0)
    out = [prune(build_model(SPEC, s), "synflow", 10, seed=s) for s in range(4)]
    for density in (0.2, 0.05, 0.01):
        base = [prune(build_model(SPEC, s), "synflow", 1 / density, seed=s) for s in range(2)]
        out += base + [move_mutation(base[i % 2], rng, 0.05) for i in range(6)]
    return out


def measure(name: str, ms: list[Mask], data, cfg: FitnessConfig) -> list[Objectives]:  # noqa: ANN001
    evaluate_masks(ms[:2], SPEC, data, cfg)  # warm-up: one-time costs (CUDA context, kernels) stay out
    t0 = time.perf_counter()
    batched = evaluate_masks(ms, SPEC, data, cfg)
    tb = time.perf_counter() - t0
    t0 = time.perf_counter()
    alone = [evaluate_mask(m, SPEC, data, cfg) for m in ms]
    ta = time.perf_counter() - t0
    same = sum(a.accuracy == b.accuracy and a.loss == b.loss for a, b in zip(batched, alone, strict=True))
    print(
        f"{name:<5} evaluate_masks {len(ms) / tb:6.1f} eval/s   evaluate_mask one at a time {len(ms) / ta:6.1f}"
        f" eval/s   equal bit for bit: {same}/{len(ms)}",
        flush=True,
    )
    return batched


def main() -> None:
    if not torch.cuda.is_available():
        sys.exit("gpu.py: error: no CUDA device here; this benchmark compares a GPU with the CPU")
    data, cfg, ms = load_dataset("mnist1d", 0), FitnessConfig(), masks()
    print(
        f"{len(ms)} masks of {SPEC}, {cfg.steps} steps of {cfg.optimizer}; GPU {torch.cuda.get_device_name()}"
    )
    gpu = measure("cuda", ms, data, cfg)
    torch.cuda.is_available = lambda: False  # the library picks its device with this; hide the GPU
    torch.set_num_threads(1)
    cpu = measure("cpu", ms, data, cfg)
    diff = [abs(a.accuracy - b.accuracy) for a, b in zip(gpu, cpu, strict=True)]
    print(f"|accuracy on cuda - on cpu|: max {max(diff):.4f}, mean {np.mean(diff):.4f}")


if __name__ == "__main__":
    main()
