"""Is the genetic search still searching? Lineages, overlap and ancestry of a run's populations.

Pure functions of stored individuals (their ``parents`` link each child to the ids it was bred from):

* an individual's **lineage** is the set of generation-0 individuals it descends from (``founders_of``): a
  seed's lineage is itself; a mutated child inherits its parent's; a crossover child the union of both
  parents'. Two individuals are of one lineage when these sets are equal, so *distinct lineages* counts the
  different ancestries a population still holds, and *founders* how many seeds still have descendants in it.
  A population that has collapsed onto one seed's descendants shows 1 and 1;
* the **overlap** of a population is the mean Jaccard |A∩B| / |A∪B| of its masks over all pairs
  (``overlap.jaccard``): 1 when every member keeps the same weights;
* the **ancestry** of an individual is every ancestor back to generation 0, breadth first, with the
  operators that made each and its prune ``strength`` where the stored record carries one.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, dataclass, fields
from typing import TYPE_CHECKING, Any, Protocol

from lotterysearch.core.masks import Mask
from lotterysearch.core.overlap import jaccard

if TYPE_CHECKING:
    from lotterysearch.storage.store import Store


class Bred(Protocol):
    """What the lineages read of an individual (a store's ``Individual`` has it); an ancestry reads the
    fields of ``Ancestor`` from it too, by name."""

    parents: tuple[int, ...]


@dataclass(frozen=True)
class GenerationDiagnostics:
    """One committed generation's population: its size, distinct lineages, surviving founders and the mean
    pairwise Jaccard overlap of its masks."""

    gen: int
    size: int
    lineages: int
    founders: int
    overlap: float


@dataclass(frozen=True)
class Ancestor:
    """One individual of an ancestry: how it was made (``operator``, ``origin``), from which ``parents``, its
    objectives, and its prune ``strength`` where the stored record carries one (else None)."""

    id: int
    generation: int
    parents: tuple[int, ...]
    operator: str
    origin: str
    accuracy: float
    density: float
    strength: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "parents", tuple(self.parents))
        if self.strength is not None:
            object.__setattr__(self, "strength", float(self.strength))

    @classmethod
    def of(cls, ind: Bred) -> Ancestor:
        """``ind``'s fields of this record, read by name; one with a default (``strength``) only where
        ``ind`` has it."""
        names = [f.name for f in fields(cls) if f.default is MISSING or hasattr(ind, f.name)]
        return cls(**{name: getattr(ind, name) for name in names})

    def line(self) -> str:
        made = f"{self.operator or 'seed'} of {'+'.join(map(str, self.parents))}" if self.parents else "seed"
        strength = "" if self.strength is None else f"  strength {self.strength:.4g}"
        return (
            f"{self.id:>5}  gen {self.generation:>3}  acc {self.accuracy:.4f}  density {self.density:.5f}  "
            f"{made}  ({self.origin}){strength}"
        )


def founders_of(individuals: Mapping[int, Bred]) -> dict[int, frozenset[int]]:
    """Each individual's lineage: the ids of the generation-0 individuals it descends from. An individual
    whose parents are all unknown (a seed) is its own founder. Ids are processed in increasing order, which
    is birth order (a child's id is larger than its parents')."""
    out: dict[int, frozenset[int]] = {}
    for i in sorted(individuals):
        known = [p for p in individuals[i].parents if p in out]
        out[i] = frozenset().union(*(out[p] for p in known)) if known else frozenset({i})
    return out


def mean_pairwise_overlap(masks: Sequence[Mask]) -> float:
    """Mean Jaccard overlap over every pair of ``masks`` (1.0 for fewer than two: nothing differs)."""
    pairs = list(itertools.combinations(masks, 2))
    if not pairs:
        return 1.0
    return sum(jaccard(a, b) for a, b in pairs) / len(pairs)


def generation_diagnostics(
    populations: Sequence[tuple[int, Sequence[int]]],
    individuals: Mapping[int, Bred],
    masks: Mapping[int, Mask] | None = None,
) -> list[GenerationDiagnostics]:
    """Diagnostics of each ``(gen, population ids)``; ``masks`` by id for the overlap (NaN without)."""
    lineage = founders_of(individuals)
    out = []
    for gen, ids in populations:
        sets = [lineage[i] for i in ids]
        overlap = mean_pairwise_overlap([masks[i] for i in ids]) if masks is not None else float("nan")
        out.append(
            GenerationDiagnostics(
                gen=gen,
                size=len(ids),
                lineages=len(set(sets)),
                founders=len(frozenset().union(*sets)) if sets else 0,
                overlap=overlap,
            )
        )
    return out


def ancestry(individual_id: int, individuals: Mapping[int, Bred]) -> list[Ancestor]:
    """``individual_id`` and every ancestor, breadth first (each once), back to generation 0."""
    out, queue, seen = [], [individual_id], {individual_id}
    while queue:
        ind = individuals[queue.pop(0)]
        out.append(Ancestor.of(ind))
        for p in ind.parents:
            if p in individuals and p not in seen:
                seen.add(p)
                queue.append(p)
    return out


# ---- a stored run -------------------------------------------------------------------------------------
def run_diagnostics(store: Store, run_id: str) -> list[GenerationDiagnostics]:
    """``generation_diagnostics`` of every committed generation of a stored run."""
    individuals = {i.id: i for i in store.individuals(run_id)}
    pops = [(g.gen, g.population) for g in store.generations(run_id)]
    wanted = {i for _, ids in pops for i in ids}
    masks = {i: individuals[i].mask for i in wanted}
    return generation_diagnostics(pops, individuals, masks)


def run_ancestries(store: Store, run_id: str, ids: Sequence[int] | None = None) -> dict[int, list[Ancestor]]:
    """The ancestry of each of ``ids`` (default: the run's front, ``pareto.run_front``)."""
    from lotterysearch.evolution.pareto import run_front

    individuals = {i.id: i for i in store.individuals(run_id)}
    ids = [i.id for i in run_front(store, run_id)] if ids is None else list(ids)
    for i in ids:
        store.individual(run_id, i)  # an unknown id is the store's one-line error
    return {i: ancestry(i, individuals) for i in ids}


def as_dict(d: GenerationDiagnostics | Ancestor) -> dict[str, Any]:
    """A plain dict of a record (JSON, the dashboard)."""
    return dict(d.__dict__)
