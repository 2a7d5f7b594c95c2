"""NSGA-II selection through DEAP: survivors by rank and crowding against hand computations and the
definitions (Deb et al. 2002), parents by tournament, and the run's generator as the only source of chance."""

import math
import random
from collections import Counter

import numpy as np
import pytest
from helpers import POINTS, brute_front

from lotterysearch.errors import ConfigError
from lotterysearch.evolution.selection import crowded_order, select_nsga2, select_parents


def test_crowded_order_hand_case() -> None:
    # Fronts: F1 = {0, 1, 2}, F2 = {3, 5, 6, 7}, F3 = {4}. F2 crowding: 3 and 5 are extremes (∞);
    # 6: (0.85−0.72)/0.4 + (0.60−0.35)/0.7 = 0.682; 7: (0.75−0.65)/0.4 + (0.40−0.25)/0.7 = 0.464.
    entrants = crowded_order(POINTS)
    assert [e.index for e in entrants] == list(range(8))
    assert [e.fitness.values[0] for e in entrants] == [0, 0, 0, 1, 2, 1, 1, 1]
    d = [e.fitness.crowding_dist for e in entrants]
    assert d[0] == d[2] == d[3] == d[4] == d[5] == math.inf
    assert d[1] == pytest.approx((0.9 - 0.7) / 0.4 + (0.5 - 0.1) / 0.8)
    assert d[6] == pytest.approx(0.13 / 0.4 + 0.25 / 0.7) and d[7] == pytest.approx(0.10 / 0.4 + 0.15 / 0.7)
    assert crowded_order([]) == []


def test_select_nsga2_hand_case() -> None:
    assert set(select_nsga2(POINTS, 3)) == {0, 1, 2}
    chosen = select_nsga2(POINTS, 6)
    assert set(chosen[:3]) == {0, 1, 2} and set(chosen[3:5]) == {3, 5} and chosen[5] == 6
    assert set(select_nsga2(POINTS, 7)) == set(range(8)) - {4}
    assert sorted(select_nsga2(POINTS, 8)) == list(range(8))
    assert select_nsga2(POINTS, 0) == [] and select_nsga2([], 0) == []


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


def test_select_nsga2_keeps_whole_fronts_of_a_search_sized_pool_with_ties() -> None:
    """Accuracies repeat, as isomorphs and clones make them: every front before the cut is kept whole, and
    from the cut front the points of largest crowding distance."""
    rng = np.random.default_rng(5)
    acc = np.round(rng.beta(5, 2, 600), 3)
    dens = np.round(rng.choice([0.01, 0.03, 0.1, 0.3], 600) * rng.uniform(0.5, 1.5, 600), 3)
    objs = [(float(a), float(d)) for a, d in zip(acc, dens, strict=True)]
    objs += objs[:100] + [(0.0, 0.0), (0.0, -0.0), (1.0, 1.0)]
    rank = {e.index: int(e.fitness.values[0]) for e in crowded_order(objs)}
    for k in (1, 100, 351, 702):
        chosen = select_nsga2(objs, k)
        assert len(chosen) == len(set(chosen)) == k
        cut = max(rank[i] for i in chosen)
        assert {i for i in rank if rank[i] < cut} <= set(chosen)
        assert all(rank[i] <= cut for i in chosen)
        front = [i for i in rank if rank[i] == cut]
        crowd = {e.index: e.fitness.crowding_dist for e in crowded_order([objs[i] for i in front])}
        kept = [j for j, i in enumerate(front) if i in chosen]
        dropped = [j for j, i in enumerate(front) if i not in chosen]
        if dropped:
            assert min(crowd[j] for j in kept) >= max(crowd[j] for j in dropped)


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
    # 4 (front 3) dominates nobody and is dominated only by 1, 2 and 5: the front rank, not pairwise
    # dominance, decides first, so it loses to 0, 3, 6 and 7 as well, however crowded they are.
    picks = select_parents(POINTS, 13, np.random.default_rng(0))
    assert len(picks) == 13 and 4 not in picks
    assert picks == select_parents(POINTS, 13, np.random.default_rng(0))
    assert select_parents([(0.5, 0.5)], 3, np.random.default_rng(0)) == [0, 0, 0]
    assert select_parents(POINTS, 0, np.random.default_rng(0)) == []
    # Equal rank and crowding: a fair coin decides.
    ties = [select_parents([(0.5, 0.5), (0.5, 0.5)], 1, np.random.default_rng(s))[0] for s in range(40)]
    assert 10 < sum(ties) < 30


def test_select_parents_enters_each_individual_in_at_most_two_tournaments_a_round() -> None:
    """A round is 4·⌊n/4⌋ tournaments on two shuffles of the population; any k takes as many rounds as it
    needs, and ``order`` (the population's ``crowded_order``) changes nothing."""
    rng = np.random.default_rng(7)
    objs = [(float(a), float(d)) for a, d in rng.random((10, 2))]
    picks = select_parents(objs, 8, np.random.default_rng(1))
    assert len(picks) == 8 and max(Counter(picks).values()) <= 2
    for seed in range(10):
        picks = select_parents(objs, 21, np.random.default_rng(seed))
        assert len(picks) == 21
        assert select_parents(objs, 21, np.random.default_rng(seed), crowded_order(objs)) == picks
        assert all(max(Counter(picks[r : r + 8]).values()) <= 2 for r in (0, 8, 16))


def test_select_parents_draws_only_from_the_given_generator() -> None:
    """DEAP draws from Python's global ``random``: seeded from ``rng`` for the call, the caller's state given
    back after it, so the picks depend on ``rng`` alone."""
    random.seed(123)
    state = random.getstate()
    a = select_parents(POINTS, 16, np.random.default_rng(9))
    assert random.getstate() == state
    random.seed(456)
    assert select_parents(POINTS, 16, np.random.default_rng(9)) == a
    assert any(select_parents(POINTS, 16, np.random.default_rng(s)) != a for s in range(10, 13))
    rng = np.random.default_rng(9)
    select_parents(POINTS, 16, rng)
    assert rng.bit_generator.state != np.random.default_rng(9).bit_generator.state  # it drew the seed


def test_select_parents_rejects_bad_k_and_an_empty_population() -> None:
    with pytest.raises(ConfigError, match=r"^number of parents k must be a non-negative integer, got -1$"):
        select_parents(POINTS, -1, np.random.default_rng(0))
    with pytest.raises(ConfigError, match=r"^cannot select parents from an empty population$"):
        select_parents([], 2, np.random.default_rng(0))
    assert select_parents([], 0, np.random.default_rng(0)) == []
