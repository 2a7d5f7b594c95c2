"""``select_nsga2`` (numpy) against ``deap.tools.selNSGA2`` itself: the same indices in the same order for
random populations with many ties, duplicates and degenerate fronts, and for every k."""

import numpy as np
import pytest
from deap import base, tools

from lotterysearch.evolution.nsga2 import select_nsga2


class _Fit(base.Fitness):
    weights = (1.0, -1.0)


class _Ind:
    __slots__ = ("fitness", "i")

    def __init__(self, i, values):
        self.i, self.fitness = i, _Fit(values)


def deap_select(objs, k):
    return [ind.i for ind in tools.selNSGA2([_Ind(i, o) for i, o in enumerate(objs)], k)]


@pytest.mark.parametrize("levels", [3, 7, 40, None])
def test_select_nsga2_equals_deap_order_for_every_k(levels) -> None:
    rng = np.random.default_rng(levels or 0)
    for trial in range(12):
        n = int(rng.integers(1, 70))
        raw = rng.random((n, 2))
        if levels is not None:  # coarse grids: equal objectives, equal crowding, fronts of one point
            raw = np.round(raw * levels) / levels
        objs = [(float(a), float(d)) for a, d in raw]
        for k in range(n + 1):
            assert select_nsga2(objs, k) == deap_select(objs, k), (trial, n, k)


def test_select_nsga2_equals_deap_on_a_search_sized_pool() -> None:
    rng = np.random.default_rng(5)
    acc = np.round(rng.beta(5, 2, 600), 3)  # accuracies repeat, as isomorphs and clones make them
    dens = np.round(rng.choice([0.01, 0.03, 0.1, 0.3], 600) * rng.uniform(0.5, 1.5, 600), 3)
    objs = [(float(a), float(d)) for a, d in zip(acc, dens, strict=True)]
    objs += objs[:100] + [(0.0, 0.0), (0.0, -0.0), (1.0, 1.0)]
    for k in (0, 1, 100, 351, 703):
        assert select_nsga2(objs, k) == deap_select(objs, k)
