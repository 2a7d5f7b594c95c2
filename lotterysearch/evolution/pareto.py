"""Pareto fronts of (validation accuracy ↑, density ↓): dominance, the fidelity rule, hypervolume.

Every reader of objectives (the search's survivor selection and stored fronts, the reports, the
experiments) takes its front and hypervolume from here, with one reference point and one rule for
successive halving: only individuals measured at the full training budget (fidelity 1) are on a front, since
a shorter run's accuracy is a pessimistic estimate, not comparable with a full one. A stored run's front,
the one the Python API, the reports, the dashboard and confirmation show, is ``run_front``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, TypeVar

import numpy as np

from lotterysearch.errors import ConfigError
from lotterysearch.settings import ROUND_KINDS

if TYPE_CHECKING:
    from lotterysearch.storage.store import Individual, Store

Objective = tuple[float, float]  # (validation accuracy ↑, density ↓)
REF_POINT: Objective = (0.0, 1.0)  # hypervolume is the area the front dominates above (accuracy 0, density 1)
FULL_FIDELITY = 1.0


class Scored(Protocol):
    """What a front is taken over: a store's individual, or anything with these attributes."""

    id: int
    accuracy: float
    density: float
    fidelity: float
    class_key: str


S = TypeVar("S", bound=Scored)


def _objectives(objectives: Sequence[Objective]) -> np.ndarray:
    if not len(objectives):
        return np.zeros((0, 2))
    try:
        obj = np.asarray(objectives, dtype=np.float64).reshape(len(objectives), -1)
    except (TypeError, ValueError):
        obj = np.zeros((0, 0))
    if obj.shape != (len(objectives), 2):
        raise ConfigError("objectives must be a list of (accuracy, density) pairs of numbers")
    bad = np.flatnonzero(~np.isfinite(obj).all(axis=1))
    if bad.size:
        i = int(bad[0])
        raise ConfigError(
            f"objectives[{i}] = {tuple(objectives[i])} is not finite: accuracy and density must be numbers"
        )
    return obj


def pareto_front(objectives: Sequence[Objective]) -> list[int]:
    """Indices (ascending) of the non-dominated points: no other point has accuracy ≥ and density ≤ with one
    strict. Equal points do not dominate each other, so duplicates on the front are all returned."""
    obj = _objectives(objectives)
    order = np.lexsort((obj[:, 1], -obj[:, 0]))  # accuracy descending, then density ascending
    front: list[int] = []
    best_density = math.inf  # lowest density among strictly more accurate points
    start = 0
    while start < len(order):
        acc = obj[order[start], 0]
        end = start
        while end < len(order) and obj[order[end], 0] == acc:
            end += 1
        lowest = obj[order[start], 1]
        if lowest < best_density:
            front += [int(i) for i in order[start:end] if obj[i, 1] == lowest]
            best_density = lowest
        start = end
    return sorted(front)


def hypervolume(objectives: Sequence[Objective], ref: Objective = REF_POINT) -> float:
    """Exact 2-D hypervolume: the area of {(a, d): ref_a ≤ a ≤ a_i and d_i ≤ d ≤ ref_d for some point i}.

    With the front sorted by density d_1 < ... < d_n (so a_1 < ... < a_n), the area is the staircase
    Σ_i (a_i − ref_a)(d_{i+1} − d_i) with d_{n+1} = ref_d. Points no better than ``ref`` add nothing.
    """
    ref_a, ref_d = (float(v) for v in ref)
    if not (math.isfinite(ref_a) and math.isfinite(ref_d)):
        raise ConfigError(f"hypervolume reference point must be finite, got {tuple(ref)}")
    obj = _objectives(objectives)
    obj = obj[(obj[:, 0] > ref_a) & (obj[:, 1] < ref_d)]
    if not len(obj):
        return 0.0
    front = obj[pareto_front([tuple(o) for o in obj])]
    front = front[np.argsort(front[:, 1], kind="stable")]
    densities = np.append(front[:, 1], ref_d)
    return float(np.sum((front[:, 0] - ref_a) * np.diff(densities)))


def is_full(fidelity: float) -> bool:
    """Measured at the full training budget: the individuals that may stand on a front."""
    return fidelity >= FULL_FIDELITY


def on_front(individuals: Sequence[S]) -> set[int]:
    """Ids of every non-dominated full-fidelity individual (copies of one point included)."""
    full = [r for r in individuals if is_full(r.fidelity)]
    return {full[i].id for i in pareto_front([(r.accuracy, r.density) for r in full])}


def front(individuals: Sequence[S]) -> list[S]:
    """The Pareto front over ``individuals``, sorted by density (then accuracy descending, then id).

    Non-dominated among the full-fidelity individuals (``on_front``). Individuals with identical
    (accuracy, density, class key) are one topology seen several times (an isomorph reusing its class's
    accuracy, a survivor's clone): only the first (lowest id, the earliest born) is listed; distinct
    classes that tie are all listed.
    """
    ids = on_front(individuals)
    first: dict[tuple[float, float, str], S] = {}
    for r in sorted(individuals, key=lambda r: r.id):
        if r.id in ids:
            first.setdefault((r.accuracy, r.density, r.class_key), r)
    return sorted(first.values(), key=lambda r: (r.density, -r.accuracy, r.id))


def front_hypervolume(individuals: Sequence[S], ref: Objective = REF_POINT) -> float:
    """Hypervolume of ``front(individuals)``."""
    return hypervolume([(r.accuracy, r.density) for r in front(individuals)], ref)


def run_front(store: Store, run_id: str) -> list[Individual]:
    """The front of a stored run, by density (``front``). A search's is the one committed with its last
    generation (the loop's ``front`` over everything measured up to it; empty before the first generation);
    an IMP run, which has no generations, has the front over its tickets, every committed round."""
    if store.run(run_id).kind in ROUND_KINDS:
        return front(store.individuals(run_id))
    last = store.last_generation(run_id)
    return front(store.individuals(run_id, last.front)) if last is not None else []
