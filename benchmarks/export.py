"""Benchmark: is an exported ticket smaller and faster than the dense masked network?

LeNet-300-100 (``mlp:784-300-100-10``) at 5% of its weights (ρ = 20), for a SynFlow mask (which compaction
shrinks most) and a magnitude mask of the same network (weights spread over every neuron, so CSR does the
work), θ₀ weights (latency does not depend on their values). ``export.bench`` writes each export format,
loads it back as a user would and times it against the dense masked network (M⊙W on every call, as
``torch.nn.utils.prune`` and this package's trainer compute it) and against the dense network with its zeros
stored, the forms interleaved round by round, at batch 1 and 256 on one thread (torch and onnxruntime).

Targets: at least 3× faster than the dense masked network at batch 1 and at batch 256, at least 10× smaller
on disk. The machine is shared, so the whole measurement is repeated (``--repeats``) and each ratio's range
over the repeats is printed.

    python benchmarks/export.py [--repeats 3] [--rounds 7] [--threads 1] [--density 0.05]
"""

from __future__ import annotations

import argparse

from lotterysearch.core.models import build_model
from lotterysearch.pruning.pruners import prune
from lotterysearch.readers.export import bench, describe_network, format_bench

SPEC = "mlp:784-300-100-10"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--density", type=float, default=0.05)
    p.add_argument("--pruners", nargs="+", default=["synflow", "magnitude"])
    args = p.parse_args()
    model = build_model(SPEC, 0)
    for pruner in args.pruners:
        mask = prune(model, pruner, 1 / args.density, seed=0)
        print(f"\n## {SPEC}, {pruner}: {describe_network(model, mask)}")
        runs = []
        for r in range(args.repeats):
            rows = bench(model, mask, (1, 256), rounds=args.rounds, threads=args.threads)
            print(f"\nrepeat {r + 1} of {args.repeats}, {args.threads} thread(s)\n{format_bench(rows)}")
            runs.append(rows)
        print(f"\n{pruner}: range over {args.repeats} repeats (best latency ratios)")
        for i, row in enumerate(runs[0]):
            if row.form.startswith("dense masked"):
                continue
            speed = [rows[i].speedup for rows in runs]
            print(
                f"  {row.form:<20} batch {row.batch:>4}: {min(speed):6.2f}-{max(speed):6.2f}× faster than"
                f" dense masked, {row.smaller:6.2f}× smaller on disk"
            )


if __name__ == "__main__":
    main()
