"""Benchmark: the same search with and without successive halving (multi-fidelity fitness).

Runs the README's demo search (``experiments/configs/demo.toml``: MNIST-1D, ``mlp:40-100-100-10``,
a population seeded by SynFlow) twice in this process on a local Ray with every core: once training
every new class for the full budget, once with ``[fitness] successive_halving = true`` (every new class
trained for steps/η^(R-1), the best 1/η by non-dominated rank continued, up to the full budget). Prints,
per generation and at the end, the hypervolume reached (of the front measured at the full budget) and the
training steps spent, and the ratios halving/full. With ``--seeds N`` both searches run from seeds 0..N-1
(``seed`` of the config: SynFlow seeding and the GA's random numbers) and the ratios are of the means, since
one GA run's hypervolume varies from seed to seed by about as much as the goal's 1%.

Goal: the same hypervolume within 1% with at most half the steps. The seeds (generation 0) are
always trained fully, so the steps ratio falls with the generations: ``--quick`` (3 generations, one seed) is
a smoke run, not a measurement of the goal.

    python benchmarks/search.py [--quick] [--seeds 3] [--generations N] [--rate 3] [--rungs 3]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from lotterysearch import api
from lotterysearch.evolution.loop import GenerationReport, halving_rungs
from lotterysearch.settings import load_config

DEMO = Path(__file__).resolve().parents[1] / "experiments" / "configs" / "demo.toml"


def run(cfg, workspace: Path) -> tuple[list[GenerationReport], float]:  # noqa: ANN001
    reports: list[GenerationReport] = []
    with api.create_run(cfg, workspace) as run:
        t0 = time.perf_counter()
        run.optimize(progress=reports.append)
        return reports, time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 generations instead of the demo's")
    parser.add_argument("--generations", type=int, default=None)
    parser.add_argument("--rate", type=int, default=None, help="halving rate η (default: the config's)")
    parser.add_argument("--rungs", type=int, default=None, help="rungs R (default: the config's)")
    parser.add_argument(
        "--seeds", type=int, default=None, help="search seeds 0..N-1 (default 1 quick, 3 full)"
    )
    args = parser.parse_args()
    seeds = args.seeds or (1 if args.quick else 3)
    import ray

    from lotterysearch.execution.cluster import connect

    base = load_config(DEMO)
    generations = args.generations or (3 if args.quick else base.ga.generations)
    base = replace(base, ga=replace(base.ga, generations=generations))
    f = base.fitness
    halving = replace(
        base,
        fitness=replace(
            f,
            successive_halving=True,
            halving_rate=args.rate or f.halving_rate,
            halving_rungs=args.rungs or f.halving_rungs,
        ),
    )
    cores = os.cpu_count() or 1
    connect(num_cpus=cores)
    print(
        f"demo search: {base.model} on {base.dataset}, population {base.ga.population}, {generations} generations,"
        f" {f.steps} steps; halving η = {halving.fitness.halving_rate}, rungs {halving_rungs(f.steps, True, halving.fitness.halving_rate, halving.fitness.halving_rungs)};"
        f" {cores} cores; load {' '.join(f'{x:.2f}' for x in os.getloadavg())}",
        flush=True,
    )
    totals = {
        "full": [0.0, 0, 0.0],
        "halving": [0.0, 0, 0.0],
    }  # hypervolume, steps, seconds summed over seeds
    header = f"{'gen':>3}  {'HV full':>8} {'steps':>7}  {'HV halving':>10} {'steps':>7}  {'HV ratio':>8} {'steps ratio':>11}"
    for seed in range(seeds):
        with tempfile.TemporaryDirectory() as tmp:
            full, t_full = run(replace(base, seed=seed), Path(tmp) / "full")
            half, t_half = run(replace(halving, seed=seed), Path(tmp) / "halving")
        print(f"\nseed {seed}\n" + header + "\n" + "-" * len(header))
        sf = sh = 0
        for a, b in zip(full, half, strict=True):
            sf, sh = sf + a.steps, sh + b.steps
            print(
                f"{a.generation:>3}  {a.hypervolume:>8.4f} {sf:>7}  {b.hypervolume:>10.4f} {sh:>7}"
                f"  {b.hypervolume / a.hypervolume:>8.4f} {sh / sf:>11.3f}",
                flush=True,
            )
        for name, reports, seconds, steps in (("full", full, t_full, sf), ("halving", half, t_half, sh)):
            totals[name][0] += reports[-1].hypervolume
            totals[name][1] += steps
            totals[name][2] += seconds
    ray.shutdown()
    (hf, sf, tf), (hh, sh, th) = totals["full"], totals["halving"]
    print(f"\nmeans over {seeds} seed(s):")
    print(
        f"final hypervolume: full {hf / seeds:.4f}, halving {hh / seeds:.4f} (ratio {hh / hf:.4f}; goal >= 0.99)"
    )
    print(
        f"training steps: full {sf / seeds:.0f}, halving {sh / seeds:.0f} (ratio {sh / sf:.3f}; goal <= 0.5)"
    )
    print(f"wall time: full {tf / seeds:.1f} s, halving {th / seeds:.1f} s (ratio {th / tf:.3f})")
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
