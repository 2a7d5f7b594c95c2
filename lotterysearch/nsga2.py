"""NSGA-II selection (Deb et al. 2002): parents by binary tournament, survivors by rank and crowding.

Objectives are plain ``(accuracy, density)`` tuples: accuracy is maximised, density minimised. DEAP's
classes are built here, on the driver, and never leave this module.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from deap import base, tools

from lotterysearch.errors import ConfigError
from lotterysearch.pareto import Objective, _objectives, is_full, nondominated_sort


def crowding_distances(objectives: Sequence[Objective], front: Sequence[int]) -> dict[int, float]:
    """Crowding distance of each member of one front, as ``deap.tools.assignCrowdingDist`` computes it:
    boundary points get ∞, others the sum over objectives of the gap between neighbours over
    (number of objectives × range)."""
    obj = _objectives(objectives)
    members = list(front)
    dist = dict.fromkeys(members, 0.0)
    if not members:
        return dist
    for m in range(2):
        ranked = sorted(members, key=lambda i: obj[i, m])  # stable, as DEAP's sort
        dist[ranked[0]] = dist[ranked[-1]] = math.inf
        span = obj[ranked[-1], m] - obj[ranked[0], m]
        if span == 0:
            continue
        for prev, cur, nxt in zip(ranked, ranked[1:], ranked[2:], strict=False):
            dist[cur] += (obj[nxt, m] - obj[prev, m]) / (2 * span)
    return dist


def select_parents(objectives: Sequence[Objective], k: int, rng: np.random.Generator) -> list[int]:
    """Parent selection: ``k`` binary tournaments by the crowded-comparison operator of NSGA-II (Deb et al.
    2002): lower front rank wins, then larger crowding distance, then a fair coin from ``rng``.

    As in ``deap.tools.selTournamentDCD``, contestants are consecutive pairs of fresh shuffles of the
    population (n // 2 tournaments per shuffle), so for k ≤ n every individual enters at most two
    tournaments. Unlike it, the rank (not pairwise dominance) decides first, any ``k`` works, and the
    randomness is ``rng``'s (a population of one is picked k times).
    """
    if not (isinstance(k, int) and k >= 0):
        raise ConfigError(f"number of parents k must be a non-negative integer, got {k!r}")
    n = len(objectives)
    if k and not n:
        raise ConfigError("cannot select parents from an empty population")
    rank = np.empty(n, dtype=np.int64)
    crowd = np.empty(n, dtype=np.float64)
    for r, front in enumerate(nondominated_sort(objectives)):
        rank[front] = r
        for i, d in crowding_distances(objectives, front).items():
            crowd[i] = d

    def winner(x: int, y: int) -> int:
        if rank[x] != rank[y]:
            return x if rank[x] < rank[y] else y
        if crowd[x] != crowd[y]:
            return x if crowd[x] > crowd[y] else y
        return x if rng.random() < 0.5 else y

    chosen: list[int] = []
    while len(chosen) < k:
        if n == 1:
            chosen.append(0)
            continue
        perm = [int(i) for i in rng.permutation(n)]
        for x, y in zip(perm[0::2], perm[1::2], strict=False):
            if len(chosen) == k:
                break
            chosen.append(winner(x, y))
    return chosen


class _Fitness(base.Fitness):
    """(accuracy ↑, density ↓) as DEAP weights. A module-level subclass instead of ``creator.create``:
    same class, but no run-time global registration (which warns on re-creation)."""

    weights = (1.0, -1.0)


class _Individual:
    """What ``selNSGA2`` needs: a ``fitness``; ``index`` maps it back to the caller's list."""

    __slots__ = ("fitness", "index")

    def __init__(self, index: int, values: Objective) -> None:
        self.index = index
        self.fitness = _Fitness(values)


def select_nsga2(objectives: Sequence[Objective], k: int) -> list[int]:
    """Survivor selection with ``deap.tools.selNSGA2`` (Deb et al. 2002): whole fronts by rank, the last
    one cut by crowding distance. Returns indices in DEAP's order (by front, the cut front by decreasing
    crowding). Deterministic: selNSGA2 draws no random numbers (DEAP 1.4) and its sorts are stable."""
    obj = _objectives(objectives)
    if not (isinstance(k, int) and 0 <= k <= len(obj)):
        raise ConfigError(f"number of survivors k must be an integer in [0, {len(obj)}], got {k!r}")
    individuals = [_Individual(i, (float(a), float(d))) for i, (a, d) in enumerate(obj)]
    return [ind.index for ind in tools.selNSGA2(individuals, k)]


def select_survivors(objectives: Sequence[Objective], fidelities: Sequence[float], k: int) -> list[int]:
    """NSGA-II survivor selection that ranks every individual measured at the full budget before any measured
    at a lower fidelity (a class successive halving stopped early; see ``pareto``). Without halving every
    fidelity is 1 and this is ``select_nsga2``.
    """
    full = [i for i, f in enumerate(fidelities) if is_full(f)]
    rest = [i for i, f in enumerate(fidelities) if not is_full(f)]
    chosen = [full[j] for j in select_nsga2([objectives[i] for i in full], min(k, len(full)))]
    if len(chosen) < k:
        chosen += [rest[j] for j in select_nsga2([objectives[i] for i in rest], k - len(chosen))]
    return chosen
