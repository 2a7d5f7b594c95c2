"""Benchmark: what bringing your own network costs, and ResNet-20's per-mask costs.

(a) Fitness of the same masks of ``mlp:40-100-100-10`` on MNIST-1D (SynFlow at 10% and 1% from 4 inits, the
default ``FitnessConfig``), the network given as the spec (the MLP family: K networks batched, compacted
where that pays) and as an ``nn.Sequential`` from a factory (the module family: one network at a time
through ``training.train``); the ratio module / spec of the seconds per mask, best of the passes.

(b) ResNet-20 (``resnet20``, 270 896 prunable weights) on one thread: SynFlow at ρ = 100 with 100
iterations, one ``Mask.effective`` (paths counted through its forward pass: what the collapse check and every
stored individual pay), and one training step at batch 128 on CIFAR-shaped inputs.

    python benchmarks/modules.py [--quick]
"""

from __future__ import annotations

import argparse
import time

import torch
from benchtools import best_of
from torch import nn

from lotterysearch.core.data import as_dataset, load_dataset
from lotterysearch.core.masks import Mask
from lotterysearch.core.models import build_model
from lotterysearch.pruning.pruners import prune
from lotterysearch.settings import FitnessConfig, TrainingConfig
from lotterysearch.training.fitness import evaluate_masks
from lotterysearch.training.trainer import train


def mlp_module(seed: int) -> nn.Module:
    """``mlp:40-100-100-10`` as a chain of torch layers (the same weights from the same seed)."""
    return nn.Sequential(nn.Linear(40, 100), nn.ReLU(), nn.Linear(100, 100), nn.ReLU(), nn.Linear(100, 10))


def fitness_rows(passes: int) -> None:
    data = load_dataset("mnist1d", 0)
    cfg = FitnessConfig()
    spec_masks = [
        prune(build_model("mlp:40-100-100-10", s), "synflow", rho) for rho in (10, 100) for s in range(4)
    ]
    module_masks = [Mask(dict(zip(["0", "2", "4"], m.to_numpy().values(), strict=True))) for m in spec_masks]
    ref = f"{__name__}:mlp_module"
    timings = {}
    for label, masks, model in (("spec", spec_masks, "mlp:40-100-100-10"), ("module", module_masks, ref)):
        seconds = best_of(passes, lambda masks=masks, model=model: evaluate_masks(masks, model, data, cfg))
        timings[label] = seconds / len(masks)
        print(f"(a) {label:<7} {timings[label] * 1000:8.1f} ms a mask ({len(masks)} masks, 115 steps)")
    print(f"(a) module / spec: {timings['module'] / timings['spec']:.2f}x the time a mask")


def resnet_rows(passes: int) -> None:
    model = build_model("resnet20", 0)
    t = time.perf_counter()
    mask = prune(model, "synflow", 100)
    print(f"(b) SynFlow rho=100, 100 iterations: {time.perf_counter() - t:.2f} s")
    print(f"(b) Mask.effective: {best_of(passes, mask.effective) * 1000:.0f} ms")
    g = torch.Generator().manual_seed(0)
    data = as_dataset((torch.randn(600, 3, 32, 32, generator=g), torch.randint(0, 10, (600,), generator=g)))
    step = best_of(passes, lambda: train(build_model("resnet20", 0), mask, data, TrainingConfig(steps=2)))
    print(f"(b) training: {step / 2 * 1000:.0f} ms a step at batch 128 (with one validation pass of 49)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one pass instead of two")
    args = parser.parse_args()
    torch.set_num_threads(1)
    passes = 1 if args.quick else 2
    fitness_rows(passes)
    resnet_rows(passes)


if __name__ == "__main__":
    main()
