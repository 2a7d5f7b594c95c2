"""Benchmark: 100 SynFlow iterations on LeNet-300-100 (mlp:784-300-100-10) at ρ = 100.

Times the library's ``prune`` (float64, and float32 via ``iterative_prune`` with ``SynFlow(torch.float32)``)
beside a minimal plain-torch loop of the same algorithm, in the same process, and prints both and their
ratio (target: library within 1.2x of the minimal loop). The minimal loop selects with ``torch.kthvalue``
over all weights as the authors' code does; a second variant selects with numpy's partition over the
unpruned weights only (the library's selection), so the library's own overhead shows separately.

    python benchmarks/prune.py [--repeats 5] [--compression 100] [--iterations 100] [--threads N]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F

from lotterysearch.core.models import build_model, prunable_layers
from lotterysearch.pruning.pruners import SynFlow, iterative_prune


def minimal_synflow(model, compression, iterations, dtype, select="torch"):  # noqa: ANN001, ANN201
    """Algorithm 1 of Tanaka et al. (2020) in plain torch; returns the kept flat positions as a bool vector."""
    layers = list(prunable_layers(model).values())
    ws = [layer.weight.detach().to(dtype).abs().requires_grad_() for layer in layers]
    bs = [layer.bias.detach().to(dtype).abs() for layer in layers]
    ones = torch.ones(1, ws[0].shape[1], dtype=dtype)
    n = sum(w.numel() for w in ws)
    keep = torch.ones(n, dtype=torch.bool)
    for k in range(1, iterations + 1):
        masks = keep.split([w.numel() for w in ws])
        h = ones
        for i, (w, b, m) in enumerate(zip(ws, bs, masks, strict=True)):
            h = F.linear(h, w * m.view(w.shape), b)
            h = torch.relu(h) if i < len(ws) - 1 else h
        grads = torch.autograd.grad(h.sum(), ws)
        scores = torch.cat([(g * w.detach()).reshape(-1) for g, w in zip(grads, ws, strict=True)])
        kept = round(n * compression ** (-k / iterations)) if k < iterations else round(n / compression)
        if select == "torch":  # the reference code's threshold, pruned weights scoring 0
            threshold = torch.kthvalue(scores, n - kept).values
            keep = scores > threshold
        else:  # numpy's introselect over the unpruned weights only
            alive = keep.nonzero().squeeze(1)
            vals = scores[alive].numpy()
            threshold = np.partition(vals, len(vals) - kept)[len(vals) - kept]
            keep = torch.zeros(n, dtype=torch.bool)
            keep[alive[torch.from_numpy(vals >= threshold)]] = True
    return keep


def best_of(repeats: int, fn) -> tuple[float, object]:  # noqa: ANN001
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--compression", type=float, default=100.0)
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model = build_model("mlp:784-300-100-10", 0)
    rho, n_it = args.compression, args.iterations
    print(
        f"SynFlow, {n_it} iterations, LeNet-300-100, ρ = {rho:g}; best of {args.repeats}; "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    for dtype in (torch.float64, torch.float32):
        t_lib, mask = best_of(
            args.repeats, lambda d=dtype: iterative_prune(model, SynFlow(d), rho, iterations=n_it)
        )
        t_min, keep = best_of(args.repeats, lambda d=dtype: minimal_synflow(model, rho, n_it, d, "torch"))
        t_np, keep_np = best_of(args.repeats, lambda d=dtype: minimal_synflow(model, rho, n_it, d, "numpy"))
        flat = torch.cat([mask[n].reshape(-1) for n in mask])
        name = str(dtype).removeprefix("torch.")
        print(
            f"{name}: library {t_lib:.3f} s | minimal loop (torch.kthvalue) {t_min:.3f} s, "
            f"ratio {t_lib / t_min:.2f}x | minimal loop (numpy, alive only) {t_np:.3f} s, "
            f"ratio {t_lib / t_np:.2f}x | kept {mask.kept()}, same mask as the minimal loops: "
            f"{bool(torch.equal(flat, keep))}/{bool(torch.equal(flat, keep_np))}"
        )


if __name__ == "__main__":
    main()
