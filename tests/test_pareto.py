"""Pareto fronts of (accuracy ↑, density ↓): dominance, hypervolume, and the front of a run's individuals
(full fidelity only, one entry per topology); hand computations, brute force and DEAP."""

from dataclasses import dataclass

import numpy as np
import pytest
from deap import base
from deap.benchmarks.tools import hypervolume as deap_hypervolume
from helpers import POINTS, brute_front

from lotterysearch.errors import ConfigError
from lotterysearch.evolution.pareto import (
    REF_POINT,
    front,
    front_hypervolume,
    hypervolume,
    is_full,
    on_front,
    pareto_front,
)
from lotterysearch.storage.store import Individual

# ---- pareto_front -----------------------------------------------------------------------------------


def test_pareto_front_hand_case_with_duplicates() -> None:
    assert pareto_front(POINTS) == [0, 1, 2]
    assert pareto_front([*POINTS, (0.80, 0.20)]) == [0, 1, 2, 8]  # an equal point (8 = 1) is not dominated
    assert pareto_front([(0.5, 0.3), (0.5, 0.2), (0.5, 0.2)]) == [1, 2]  # same accuracy: lower density
    assert pareto_front([]) == []


def test_pareto_front_matches_brute_force_on_tied_grid_points() -> None:
    rng = np.random.default_rng(0)
    for _ in range(50):
        objs = [(float(a), float(d)) for a, d in rng.integers(0, 5, size=(30, 2)) / 4]
        assert pareto_front(objs) == brute_front(objs)


def test_pareto_front_rejects_malformed_and_nan_objectives() -> None:
    with pytest.raises(
        ConfigError, match=r"^objectives must be a list of \(accuracy, density\) pairs of numbers$"
    ):
        pareto_front([(0.5, 0.1, 3.0)])
    with pytest.raises(ConfigError, match=r"^objectives\[0\] = \(0\.5, inf\) is not finite"):
        pareto_front([(0.5, float("inf"))])


# ---- hypervolume --------------------------------------------------------------------------------------


def test_hypervolume_is_the_hand_computed_staircase() -> None:
    front = [(0.5, 0.2), (0.8, 0.5), (0.9, 0.8)]
    # 0.5·(0.5 − 0.2) + 0.8·(0.8 − 0.5) + 0.9·(1 − 0.8) = 0.15 + 0.24 + 0.18
    assert hypervolume(front) == pytest.approx(0.57, abs=1e-12)
    assert hypervolume([*front, (0.4, 0.6), (0.5, 0.2)]) == pytest.approx(0.57, abs=1e-12)  # dominated, dup
    assert hypervolume([(0.8, 0.5), (-0.1, 0.1), (0.9, 1.0)]) == pytest.approx(0.4)  # outside the box: 0
    assert hypervolume(front, ref=(0.5, 0.9)) == pytest.approx(0.3 * 0.3 + 0.4 * 0.1)  # (0.5, 0.2): no gain
    assert hypervolume([]) == 0.0
    assert REF_POINT == (0.0, 1.0) and hypervolume(front, REF_POINT) == hypervolume(front)


def test_hypervolume_matches_deap_benchmarks() -> None:
    class Fit(base.Fitness):
        weights = (1.0, -1.0)

    class Ind:
        def __init__(self, values):
            self.fitness = Fit(values)

    rng = np.random.default_rng(1)
    for _ in range(10):
        objs = [(float(a), float(d)) for a, d in rng.random((25, 2))]
        front = [Ind(objs[i]) for i in pareto_front(objs)]
        ours = hypervolume(objs, ref=(0.0, 1.0))
        assert ours == pytest.approx(deap_hypervolume(front, ref=[0.0, 1.0]), rel=1e-12)


# ---- the front of a run's individuals -----------------------------------------------------------------


def ind(id: int, accuracy: float, density: float, key: str, fidelity: float = 1.0) -> Individual:
    return Individual(
        run_id="r",
        id=id,
        generation=0,
        packed=b"",
        parents=(),
        operator="",
        origin="test",
        class_key=key,
        accuracy=accuracy,
        density=density,
        effective_density=density,
        evaluated=True,
        fidelity=fidelity,
    )


@dataclass
class Scored:
    """Not a store record: anything with these five attributes has a front."""

    id: int
    accuracy: float
    density: float
    fidelity: float = 1.0
    class_key: str = ""


def test_is_full_means_the_whole_budget() -> None:
    assert is_full(1.0) and is_full(1)
    assert not any(is_full(f) for f in (0.0, 0.1, 1 / 3, 0.5, 1 - 1e-12))


def test_only_full_fidelity_individuals_are_on_the_front() -> None:
    """A class stopped early by successive halving would dominate everything; it is neither on the front
    nor does it push a full-fidelity individual off it."""
    records = [
        ind(0, 0.80, 0.30, "A"),
        ind(1, 0.95, 0.05, "B", fidelity=1 / 3),
        ind(2, 0.70, 0.20, "C"),
        ind(3, 0.60, 0.40, "D"),  # dominated by 0
        ind(4, 0.90, 0.50, "E", fidelity=0.5),
    ]
    assert pareto_front([r.objectives for r in records]) == [1]  # what the front would be without the rule
    assert on_front(records) == {0, 2}
    assert [r.id for r in front(records)] == [2, 0]
    # 0.7·(0.3 − 0.2) + 0.8·(1 − 0.3)
    assert front_hypervolume(records) == pytest.approx(0.07 + 0.56, abs=1e-12)
    low = [r for r in records if not is_full(r.fidelity)]
    assert on_front(low) == set() and front(low) == [] and front_hypervolume(low) == 0.0
    assert on_front([]) == set() and front([]) == [] and front_hypervolume([]) == 0.0


def test_front_lists_a_topology_once_with_its_lowest_id_and_every_tying_class() -> None:
    records = [
        ind(9, 0.80, 0.30, "A"),  # a later copy of 3 (an isomorph reusing its accuracy)
        ind(3, 0.80, 0.30, "A"),
        ind(5, 0.80, 0.30, "F"),  # another class with the same objectives: listed too
        ind(7, 0.80, 0.30, "A", fidelity=1 / 3),
        ind(4, 0.70, 0.20, "C"),
        ind(1, 0.70, 0.20, "C"),
        ind(8, 0.75, 0.30, "G"),  # same density, less accurate: dominated
    ]
    assert on_front(records) == {9, 3, 5, 4, 1}  # every copy of a front point is non-dominated
    listed = front(records)
    assert [(r.id, r.class_key) for r in listed] == [(1, "C"), (3, "A"), (5, "F")]
    assert listed[1] is records[1]  # the caller's objects, not copies
    assert front_hypervolume(records) == pytest.approx(hypervolume([(0.7, 0.2), (0.8, 0.3)]), abs=1e-15)
    assert front(list(reversed(records))) == listed  # independent of the order given


def test_front_is_sorted_by_density_for_plain_objects() -> None:
    staircase = [(0.9, 0.8), (0.5, 0.1), (0.8, 0.5), (0.6, 0.2), (0.7, 0.3)]
    rng = np.random.default_rng(4)
    for _ in range(5):
        order = rng.permutation(len(staircase))
        items = [Scored(int(i), *staircase[i]) for i in order]
        assert [(s.accuracy, s.density) for s in front(items)] == sorted(staircase, key=lambda o: o[1])
    assert front([Scored(0, 0.5, 0.5), Scored(1, 0.5, 0.5, 0.5), Scored(2, 0.4, 0.5)]) == [
        Scored(0, 0.5, 0.5)
    ]


def test_front_matches_pareto_front_on_random_tied_records() -> None:
    rng = np.random.default_rng(5)
    for _ in range(30):
        records = [
            ind(
                i,
                float(rng.integers(0, 4)) / 4,
                float(rng.integers(1, 5)) / 4,
                "ABC"[rng.integers(0, 3)],
                fidelity=1.0 if rng.random() < 0.8 else 0.5,
            )
            for i in rng.permutation(25)
        ]
        full = [r for r in records if r.fidelity == 1.0]
        objs = [r.objectives for r in full]
        assert on_front(records) == {full[i].id for i in brute_front(objs)}
        listed = front(records)
        assert {r.objectives for r in listed} == {objs[i] for i in brute_front(objs)}
        groups = [(r.accuracy, r.density, r.class_key) for r in listed]
        assert len(groups) == len(set(groups))
        for r in listed:
            same = [
                s.id
                for s in full
                if (s.accuracy, s.density, s.class_key) == (r.accuracy, r.density, r.class_key)
            ]
            assert r.id == min(same)
        assert [r.density for r in listed] == sorted(r.density for r in listed)
        assert front_hypervolume(records) == pytest.approx(hypervolume(objs), abs=1e-15)
