"""NSGA-II selection (Deb et al. 2002): parents by binary tournament, survivors by rank and crowding.

Objectives are plain ``(accuracy, density)`` tuples: accuracy is maximised, density minimised. Survivor
selection reproduces ``deap.tools.selNSGA2`` exactly, vectorised in numpy (DEAP is its test oracle).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from lotterysearch.errors import ConfigError
from lotterysearch.evolution.pareto import Objective, _objectives, is_full, nondominated_sort


def crowding_distances(objectives: Sequence[Objective], front: Sequence[int]) -> dict[int, float]:
    """Crowding distance of each member of one front, as ``deap.tools.assignCrowdingDist`` computes it:
    boundary points get ∞, others the sum over objectives of the gap between neighbours over
    (number of objectives × range)."""
    members = np.asarray(list(front), dtype=np.int64)
    dist = _crowding(_objectives(objectives), members)
    return {int(i): float(d) for i, d in zip(members, dist, strict=True)}


def _crowding(obj: np.ndarray, members: np.ndarray) -> np.ndarray:
    """``crowding_distances`` of ``members`` (rows of ``obj``, one front) as an array in their order, with
    the same float operations: per objective a stable sort, the ends set to ∞, then each interior point
    += (next − prev) / (2 · span), objective 0 before objective 1."""
    dist = np.zeros(len(members))
    if not len(members):
        return dist
    for m in range(2):
        v = obj[members, m]
        order = np.argsort(v, kind="stable")
        dist[order[0]] = dist[order[-1]] = math.inf
        ranked = v[order]
        span = ranked[-1] - ranked[0]
        if span == 0:
            continue
        dist[order[1:-1]] += (ranked[2:] - ranked[:-2]) / (2 * span)
    return dist


def crowded_order(objectives: Sequence[Objective]) -> tuple[np.ndarray, np.ndarray]:
    """Front rank and crowding distance of every individual: the keys of the crowded-comparison operator
    (Deb et al. 2002). They change only with the population, so a caller drawing parents often keeps them."""
    obj = _objectives(objectives)
    n = len(obj)
    rank = np.empty(n, dtype=np.int64)
    crowd = np.empty(n, dtype=np.float64)
    for r, front in enumerate(nondominated_sort(obj)):
        members = np.asarray(front, dtype=np.int64)
        rank[members] = r
        crowd[members] = _crowding(obj, members)
    return rank, crowd


def select_parents(
    objectives: Sequence[Objective],
    k: int,
    rng: np.random.Generator,
    order: tuple[np.ndarray, np.ndarray] | None = None,
) -> list[int]:
    """Parent selection: ``k`` binary tournaments by the crowded-comparison operator of NSGA-II (Deb et al.
    2002): lower front rank wins, then larger crowding distance, then a fair coin from ``rng``.

    As in ``deap.tools.selTournamentDCD``, contestants are consecutive pairs of fresh shuffles of the
    population (n // 2 tournaments per shuffle), so for k ≤ n every individual enters at most two
    tournaments. Unlike it, the rank (not pairwise dominance) decides first, any ``k`` works, and the
    randomness is ``rng``'s (a population of one is picked k times). ``order``: ``crowded_order`` of
    ``objectives`` when the caller has it.
    """
    if not (isinstance(k, int) and k >= 0):
        raise ConfigError(f"number of parents k must be a non-negative integer, got {k!r}")
    n = len(objectives)
    if k and not n:
        raise ConfigError("cannot select parents from an empty population")
    rank, crowd = crowded_order(objectives) if order is None else order

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


def _deap_fronts(obj: np.ndarray, k: int) -> list[np.ndarray]:
    """The fronts ``deap.tools.sortNondominated(individuals, k)`` returns, as index arrays in its order.

    DEAP groups individuals of equal objectives (first appearance order), ranks the groups by Deb's fast
    non-dominated sort and lists each front's groups in the order their last dominator of the previous
    front releases them (ties: by group order); it stops once ``k`` individuals are sorted. Here the
    dominance counts are one boolean matrix over the groups instead of a Python double loop.
    """
    if k == 0 or not len(obj):
        return []
    # wvalues = (accuracy, -density); Fitness equality is equality of wvalues
    w = np.stack([obj[:, 0], -obj[:, 1]], axis=1)
    uniq, first, inverse = np.unique(w, axis=0, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")  # groups in order of first appearance
    rank_of = np.empty(order.size, dtype=np.int64)
    rank_of[order] = np.arange(order.size)
    group = rank_of[inverse.reshape(-1)]  # individual -> group (first-appearance numbering)
    u = uniq[order]
    members = np.argsort(group, kind="stable")  # individuals by group, original order within a group
    bounds = np.searchsorted(group[members], np.arange(u.shape[0] + 1))
    a, b = u[:, 0], u[:, 1]
    # [p, d]: group p dominates group d (no worse in both, and the groups differ, so better in one)
    dominates = (a[:, None] >= a[None, :]) & (b[:, None] >= b[None, :])
    np.fill_diagonal(dominates, False)
    count = dominates.sum(axis=0)
    current = np.flatnonzero(count == 0)
    fronts = [current]
    sorted_n = int((bounds[current + 1] - bounds[current]).sum())
    n = min(len(obj), k)
    while sorted_n < n:
        released = dominates[current]  # [|front|, groups]
        count = count - released.sum(axis=0)
        cand = np.flatnonzero((count == 0) & released.any(axis=0))
        # the position (in the current front) of the last dominator that releases each candidate
        last = (released[:, cand] * np.arange(1, current.size + 1)[:, None]).max(axis=0)
        current = cand[np.lexsort((cand, last))]
        fronts.append(current)
        sorted_n += int((bounds[current + 1] - bounds[current]).sum())
    return [np.concatenate([members[bounds[g] : bounds[g + 1]] for g in f]) for f in fronts]


def _deap_crowding(values: np.ndarray) -> np.ndarray:
    """``deap.tools.assignCrowdingDist`` of one front (rows in front order), with DEAP's float operations:
    one in-place sort per objective (so ties in the second keep the first's order), boundary points ∞,
    interior ones += (next − prev) / (2 · span)."""
    dist = np.zeros(len(values))
    order = np.arange(len(values))
    for m in range(values.shape[1]):
        order = order[np.argsort(values[order, m], kind="stable")]
        v = values[order, m]
        dist[order[0]] = dist[order[-1]] = math.inf
        if v[-1] == v[0]:
            continue
        norm = values.shape[1] * float(v[-1] - v[0])
        dist[order[1:-1]] += (v[2:] - v[:-2]) / norm
    return dist


def select_nsga2(objectives: Sequence[Objective], k: int) -> list[int]:
    """Survivor selection as ``deap.tools.selNSGA2`` (Deb et al. 2002) makes it: whole fronts by rank, the
    last one cut by crowding distance. Returns indices in DEAP's order (by front, the cut front by
    decreasing crowding), equal to DEAP's for every input (``tests/test_nsga2_deap.py``) in numpy: DEAP's
    O(N²) Python dominance loop took 4.6 s for 2 048 individuals. Deterministic: no random numbers."""
    obj = _objectives(objectives)
    if not (isinstance(k, int) and 0 <= k <= len(obj)):
        raise ConfigError(f"number of survivors k must be an integer in [0, {len(obj)}], got {k!r}")
    fronts = _deap_fronts(obj, k)
    if not fronts:
        return []
    chosen = [int(i) for f in fronts[:-1] for i in f]
    last = fronts[-1]
    if k - len(chosen) > 0:
        crowd = _deap_crowding(obj[last])
        chosen += [int(i) for i in last[np.argsort(-crowd, kind="stable")][: k - len(chosen)]]
    return chosen


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
