"""NSGA-II selection (Deb et al. 2002) through DEAP: survivors by rank and crowding, parents by tournament.

Objectives are plain ``(accuracy, density)`` tuples: accuracy is maximised, density minimised. The loops pass
objectives and get indices back; DEAP's individuals are built here, on the driver, and never leave this
module (Ray workers see packed masks and return numbers).

DEAP draws its random numbers from Python's global ``random``. ``select_parents`` seeds it from the run's
numpy generator for the length of one call and gives the caller's state back afterwards, so the run's one
generator (whose state each stored generation holds) still decides everything, and nothing else in the
process sees its draws change.
"""

from __future__ import annotations

import math
import random
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np
from deap import base, tools
from deap.tools.emo import assignCrowdingDist

from lotterysearch.errors import ConfigError
from lotterysearch.evolution.pareto import Objective, _objectives, is_full


class _Fitness(base.Fitness):
    """(accuracy ↑, density ↓) as DEAP weights. A module-level subclass rather than ``creator.create``: the
    same class, without a run-time global registration (which warns when made twice)."""

    weights = (1.0, -1.0)


class _FrontRank(base.Fitness):
    """An individual's non-dominated front, lower is better: as the fitness a tournament compares, its
    dominance is "a lower rank", which is what NSGA-II's crowded comparison asks first."""

    weights = (-1.0,)


class _Individual:
    """What DEAP's selection needs, a ``fitness``; ``index`` maps it back to the caller's list."""

    __slots__ = ("fitness", "index")

    def __init__(self, index: int, fitness: base.Fitness) -> None:
        self.index = index
        self.fitness = fitness


def _individuals(obj: np.ndarray) -> list[_Individual]:
    return [_Individual(i, _Fitness((a, d))) for i, (a, d) in enumerate(obj.tolist())]


def select_nsga2(objectives: Sequence[Objective], k: int) -> list[int]:
    """Survivor selection with ``deap.tools.selNSGA2`` (Deb et al. 2002): whole fronts by rank, the last one
    cut by crowding distance. Returns indices in DEAP's order (by front, the cut front by decreasing
    crowding). The fronts come from Fortin et al. (2013)'s sort (``nd="log"``): DEAP's standard sort, a
    Python loop over every pair, took 4.6 s for 2 048 individuals. Deterministic: neither draws a random
    number, and ties keep the order of DEAP's stable sorts."""
    obj = _objectives(objectives)
    if not (isinstance(k, int) and 0 <= k <= len(obj)):
        raise ConfigError(f"number of survivors k must be an integer in [0, {len(obj)}], got {k!r}")
    if k == 0:
        return []
    return [ind.index for ind in tools.selNSGA2(_individuals(obj), k, nd="log")]


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


def crowded_order(objectives: Sequence[Objective]) -> list[_Individual]:
    """The individuals as tournament entrants: each one's fitness is its front rank
    (``deap.tools.sortLogNondominated``) and carries its crowding distance within that front
    (``deap.tools.emo.assignCrowdingDist``), the two keys of NSGA-II's crowded comparison (Deb et al. 2002).
    They change only with the population, so a caller drawing parents often keeps them."""
    entrants = _individuals(_objectives(objectives))
    for rank, front in enumerate(tools.sortLogNondominated(entrants, len(entrants)) if entrants else []):
        assignCrowdingDist(front)
        for ind in front:  # the objectives have served: the front rank is what a tournament compares
            crowding = ind.fitness.crowding_dist
            ind.fitness = _FrontRank((rank,))
            ind.fitness.crowding_dist = crowding
    return entrants


_PYTHON_RANDOM = threading.Lock()


@contextmanager
def python_random_from(rng: np.random.Generator) -> Iterator[None]:
    """Run a block with Python's global ``random`` (which DEAP draws from) seeded from ``rng``, and restore
    the caller's state after it. Calls in this process wait for each other; another thread drawing from
    ``random`` meanwhile would change this block's draws."""
    with _PYTHON_RANDOM:
        saved = random.getstate()
        random.seed(int(rng.integers(2**63)))
        try:
            yield
        finally:
            random.setstate(saved)


def select_parents(
    objectives: Sequence[Objective],
    k: int,
    rng: np.random.Generator,
    order: list[_Individual] | None = None,
) -> list[int]:
    """Parent selection: ``k`` binary tournaments by NSGA-II's crowded comparison (Deb et al. 2002): lower
    front rank wins, then larger crowding distance, then a fair coin.

    The tournaments are ``deap.tools.selTournamentDCD``'s on ``crowded_order``'s entrants: contestants are
    consecutive pairs of two fresh shuffles of the population, so every individual enters at most two of each
    round of 4·⌊n/4⌋ tournaments; rounds follow each other until ``k`` parents are chosen. A population of
    fewer than four enters each round ⌈4/n⌉ times. The randomness is ``rng``'s (``python_random_from``).
    ``order``: ``crowded_order`` of ``objectives`` when the caller has it.
    """
    if not (isinstance(k, int) and k >= 0):
        raise ConfigError(f"number of parents k must be a non-negative integer, got {k!r}")
    n = len(objectives)
    if k and not n:
        raise ConfigError("cannot select parents from an empty population")
    if not k:
        return []
    entrants = crowded_order(objectives) if order is None else order
    entrants = entrants * math.ceil(4 / n)
    per_round = 4 * (len(entrants) // 4)
    chosen: list[int] = []
    with python_random_from(rng):
        while len(chosen) < k:
            tournaments = min(per_round, 4 * math.ceil((k - len(chosen)) / 4))
            chosen += [ind.index for ind in tools.selTournamentDCD(entrants, tournaments)]
    return chosen[:k]
