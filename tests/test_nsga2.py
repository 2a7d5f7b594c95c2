"""NSGA-II selection: crowding distances, survivors by rank and crowding, parents by tournament; DEAP and the
definitions (Deb et al. 2002) as oracles."""

import math
import random

import numpy as np
import pytest
from deap import base, tools
from deap.tools.emo import assignCrowdingDist
from helpers import POINTS, brute_front

from lotterysearch.errors import ConfigError
from lotterysearch.evolution.nsga2 import crowding_distances, select_nsga2, select_parents


class _Fit(base.Fitness):
    weights = (1.0, -1.0)


class _Ind:
    def __init__(self, i, values):
        self.i, self.fitness = i, _Fit(values)


def test_crowding_distances_match_deap() -> None:
    rng = np.random.default_rng(2)
    for objs in (POINTS, [(float(a), float(d)) for a, d in rng.integers(0, 6, size=(40, 2)) / 5]):
        inds = [_Ind(i, o) for i, o in enumerate(objs)]
        fronts = tools.sortNondominated(inds, len(inds))
        for f in fronts:
            assignCrowdingDist(f)
            ours = crowding_distances(objs, [ind.i for ind in f])
            assert ours == {ind.i: pytest.approx(ind.fitness.crowding_dist) for ind in f}


def test_select_nsga2_hand_case() -> None:
    # F2 crowding: 3 and 5 are extremes (∞); 6: (0.85−0.72)/0.4 + (0.60−0.35)/0.7 = 0.682;
    # 7: (0.75−0.65)/0.4 + (0.40−0.25)/0.7 = 0.464. So 6 survives before 7.
    d = crowding_distances(POINTS, [3, 5, 6, 7])
    assert d[3] == d[5] == math.inf
    assert d[6] == pytest.approx(0.13 / 0.4 + 0.25 / 0.7) and d[7] == pytest.approx(0.10 / 0.4 + 0.15 / 0.7)
    assert set(select_nsga2(POINTS, 3)) == {0, 1, 2}
    chosen = select_nsga2(POINTS, 6)
    assert set(chosen[:3]) == {0, 1, 2} and set(chosen[3:5]) == {3, 5} and chosen[5] == 6
    assert set(select_nsga2(POINTS, 7)) == set(range(8)) - {4}
    assert sorted(select_nsga2(POINTS, 8)) == list(range(8))
    assert select_nsga2(POINTS, 0) == []


def brute_nsga2(objs, k) -> set[int] | None:
    """Deb et al. 2002 from the definitions; None when the cut falls on a crowding tie."""
    left, fronts = list(range(len(objs))), []
    while left:
        sub = [objs[i] for i in left]
        front = [left[i] for i in brute_front(sub)]
        fronts.append(front)
        left = [i for i in left if i not in front]
    chosen: list[int] = []
    for front in fronts:
        if len(chosen) + len(front) <= k:
            chosen += front
            continue
        dist = dict.fromkeys(front, 0.0)
        for m in range(2):
            vals = sorted(objs[i][m] for i in front)
            span = vals[-1] - vals[0]
            for i in front:
                if objs[i][m] in (vals[0], vals[-1]):
                    dist[i] = math.inf
                elif span:
                    below = max(v for v in vals if v < objs[i][m])
                    above = min(v for v in vals if v > objs[i][m])
                    dist[i] += (above - below) / (2 * span)
        ranked = sorted(front, key=lambda i: -dist[i])
        need = k - len(chosen)
        if need < len(ranked) and dist[ranked[need - 1]] == dist[ranked[need]]:
            return None
        chosen += ranked[:need]
        break
    return set(chosen)


def test_select_nsga2_matches_brute_force_and_is_deterministic() -> None:
    rng = np.random.default_rng(3)
    checked = 0
    for _ in range(40):
        objs = [(float(a), float(d)) for a, d in rng.random((12, 2))]
        k = int(rng.integers(1, 12))
        state = random.getstate()
        chosen = select_nsga2(objs, k)
        assert random.getstate() == state  # selNSGA2 draws nothing from Python's random
        assert select_nsga2(objs, k) == chosen
        expected = brute_nsga2(objs, k)
        if expected is not None:
            assert set(chosen) == expected
            checked += 1
    assert checked >= 20


def test_select_nsga2_rejects_bad_k_and_nan() -> None:
    with pytest.raises(ConfigError, match=r"^number of survivors k must be an integer in \[0, 8\], got 9$"):
        select_nsga2(POINTS, 9)
    with pytest.raises(ConfigError, match=r"^objectives\[1\] = \(nan, 0\.2\) is not finite"):
        select_nsga2([(0.5, 0.1), (float("nan"), 0.2)], 1)


def test_select_parents_tournaments_by_rank_then_crowding() -> None:
    # 0 dominates everyone, 3 is dominated by everyone: 0 wins both its tournaments, 3 never wins.
    objs = [(0.9, 0.1), (0.8, 0.3), (0.7, 0.2), (0.5, 0.5)]
    for seed in range(20):
        chosen = select_parents(objs, 4, np.random.default_rng(seed))
        assert chosen.count(0) == 2 and 3 not in chosen
    picks = select_parents(POINTS, 13, np.random.default_rng(0))
    assert len(picks) == 13 and 4 not in picks  # rank 2 loses every tournament
    assert picks == select_parents(POINTS, 13, np.random.default_rng(0))
    assert select_parents([(0.5, 0.5)], 3, np.random.default_rng(0)) == [0, 0, 0]
    # Equal rank and crowding: a fair coin from rng decides.
    ties = [select_parents([(0.5, 0.5), (0.5, 0.5)], 1, np.random.default_rng(s))[0] for s in range(40)]
    assert 10 < sum(ties) < 30
