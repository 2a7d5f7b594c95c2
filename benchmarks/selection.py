"""Benchmark: NSGA-II selection through DEAP (``lotterysearch.selection``) against the numpy copy of DEAP's
``selNSGA2`` the search used before, at the scale benchmark's population.

The numpy copy is ``lotterysearch/nsga2.py`` of commit ``NUMPY_COPY``, read with ``git show``: survivors as
``selNSGA2`` with DEAP's standard sort, index for index; parents by binary tournaments on a vectorised rank
and crowding. Both run here on the same objectives, in this process; every figure is the least
CPU time of ``--repeats`` runs, the two taking turns, and the ratio is DEAP's time over the numpy copy's.

What a driver selects at population N (``--population``, default 1 024 as ``benchmarks/scale.py``):

* generational, per generation: survivors of N parents and N children (2N → N), the new population ranked
  (front and crowding) and N parents drawn by tournament;
* steady state, per generation of N arrivals: four survivor selections over N + N/4 (``select_every`` =
  N/4), the population ranked after each, and 2N parents drawn in four calls.

Two kinds of objectives: ``scale``, as the scale benchmark's simulated cluster makes them (accuracy rising
with the effective density, spread by the class key: few ties), and ``ties``, accuracies to three decimals
and densities on a grid, as isomorphs and clones make them.

    python benchmarks/selection.py [--population 1024] [--repeats 9] [--standard]

``--standard`` also times ``selNSGA2`` with DEAP's standard sort (a Python loop over every pair) once.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import time
import types
from collections.abc import Callable

import numpy as np
from benchtools import module_at
from deap import base, tools

from lotterysearch.evolution import selection

NUMPY_COPY = "d2c3546"  # the last commit with the numpy copy of selNSGA2
Objective = tuple[float, float]


class Fitness(base.Fitness):
    weights = (1.0, -1.0)  # accuracy up, density down


class Individual:
    def __init__(self, values: Objective) -> None:
        self.fitness = Fitness(values)


def numpy_copy() -> types.ModuleType:
    """``lotterysearch/nsga2.py`` of commit ``NUMPY_COPY`` with the ``pareto`` it imported then (its
    non-dominated sort went with it)."""
    sys.modules["lotterysearch.pareto"] = module_at(
        NUMPY_COPY, "lotterysearch/pareto.py", "numpy_copy_pareto"
    )
    try:
        return module_at(NUMPY_COPY, "lotterysearch/nsga2.py", "numpy_copy_nsga2")
    finally:
        del sys.modules["lotterysearch.pareto"]  # that commit's path: no module of today's package


def objectives(kind: str, n: int, seed: int) -> list[Objective]:
    """``n`` (accuracy, density) pairs of one kind (see the module's docstring)."""
    rng = np.random.default_rng(seed)
    if kind == "scale":  # benchmarks/scale.py's simulated_objectives, the class key's hash drawn uniform
        eff = rng.choice([0.01, 0.02, 0.05, 0.1, 0.2], n) * rng.uniform(0.8, 1.2, n)
        acc = 0.1 + 0.85 * (1 - np.exp(-60 * eff)) * (0.9 + 0.1 * rng.random(n))
        dens = eff * rng.uniform(1.0, 1.3, n)
    else:
        acc = np.round(rng.beta(5, 2, n), 3)
        dens = np.round(rng.choice([0.01, 0.03, 0.1, 0.3], n) * rng.uniform(0.5, 1.5, n), 3)
    return [(float(a), float(d)) for a, d in zip(acc, dens, strict=True)]


def compare(
    f: Callable[[types.ModuleType], object], a: types.ModuleType, b: types.ModuleType, repeats: int
) -> tuple[float, float]:
    """The least CPU time of ``f(a)`` and of ``f(b)`` over ``repeats`` alternating runs, in seconds: CPU
    time, and the two taken turn by turn, so that other jobs on a shared machine weigh on both alike."""
    times: dict[types.ModuleType, list[float]] = {a: [], b: []}
    for _ in range(repeats):
        for sel in (a, b):
            t0 = time.process_time()
            f(sel)
            times[sel].append(time.process_time() - t0)
    return min(times[a]), min(times[b])


def steps(
    pool: list[Objective], n: int, ranked: dict
) -> list[tuple[str, Callable[[types.ModuleType], object]]]:
    """The rows: what a driver selects at population ``n`` from ``pool`` (2n objectives)."""
    population = pool[:n]
    return [
        (f"survivors {2 * n} -> {n}", lambda s: s.select_survivors(pool, [1.0] * len(pool), n)),
        (
            f"survivors {n + n // 4} -> {n}",
            lambda s: s.select_survivors(pool[: n + n // 4], [1.0] * (n + n // 4), n),
        ),
        (f"ranking {n} (front, crowding)", lambda s: s.crowded_order(population)),
        (
            f"{n} parents, ranking given",
            lambda s: s.select_parents(population, n, np.random.default_rng(0), ranked[s]),
        ),
        ("a generational generation", lambda s: generational(s, pool, n)),
        ("a steady-state generation", lambda s: steady(s, pool, n)),
    ]


def generational(sel: types.ModuleType, pool: list[Objective], n: int) -> None:
    """What the generational loop selects in one generation: survivors of 2n, then n parents of them."""
    keep = sel.select_survivors(pool, [1.0] * len(pool), n)
    population = [pool[i] for i in keep]
    sel.select_parents(population, n, np.random.default_rng(0), sel.crowded_order(population))


def steady(sel: types.ModuleType, pool: list[Objective], n: int) -> None:
    """What the steady-state loop selects in one generation: every n/4 arrivals survivors of n + n/4, the
    population ranked anew and n/2 parents drawn (two per child)."""
    rng = np.random.default_rng(0)
    population = pool[:n]
    for q in range(4):
        arrivals = pool[n + q * (n // 4) : n + (q + 1) * (n // 4)]
        both = population + arrivals
        population = [both[i] for i in sel.select_survivors(both, [1.0] * len(both), n)]
        sel.select_parents(population, n // 2, rng, sel.crowded_order(population))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--population", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--standard", action="store_true", help="time DEAP's standard sort once as well")
    args = parser.parse_args()
    n, repeats = args.population, args.repeats
    old = numpy_copy()
    print(
        f"selection benchmark: population {n}, least CPU time of {repeats} runs; {os.cpu_count()} cores on"
        f" {socket.gethostname()}; load {' '.join(f'{x:.2f}' for x in os.getloadavg())}",
        flush=True,
    )
    header = f"{'objectives':<12}{'step':<44}{'numpy ms':>10}{'DEAP ms':>10}{'DEAP/numpy':>12}"
    print(header + "\n" + "-" * len(header))
    for kind in ("scale", "ties"):
        pool = objectives(kind, 2 * n, seed=5)
        ranked = {s: s.crowded_order(pool[:n]) for s in (old, selection)}
        for name, step in steps(pool, n, ranked):
            t_old, t_new = compare(step, old, selection, repeats)
            print(f"{kind:<12}{name:<44}{1e3 * t_old:>10.1f}{1e3 * t_new:>10.1f}{t_new / t_old:>11.2f}x")
        if args.standard:
            individuals = [Individual(o) for o in pool]
            t0 = time.process_time()
            tools.selNSGA2(individuals, n)
            t = time.process_time() - t0
            print(f"{kind:<12}{f'survivors {2 * n} -> {n}, DEAP standard sort':<44}{'':>10}{1e3 * t:>10.1f}")


if __name__ == "__main__":
    main()
