"""Pilot: does variation vary? The ticket-mode search on one θ₀ with a deterministic mutation and with a
child's own prune strength.

``magnitude_prune`` prunes 49% of each layer's smallest trained weights (one IMP round as a mutation) and draws
nothing, so a parent has exactly one possible child and the population holds few lineages. ``adaptive_prune``
gives each child a strength σ' = σ·exp(τ·N(0, 1)) of its parent's (σ₀ = 0.49), regrows a share of what it drops
by the parent's gradient (RigL) and trains each child on its own batch order. Both runs: LeNet-300-100 on MNIST,
population 8, 4 generations, a 1000-step fitness, one θ₀, in this process.

A lineage is a line of descent in the final population: its members that are no ancestor of another member,
counted once per distinct mask. Also reported: the distinct masks, the distinct seeds the population
descends from, and how many parents had two or more different child masks over the run.

    python -m experiments.variation_pilot [--data-dir /work/shared/data/mnist] [--out results.json]
        [--variants magnitude_prune adaptive] [--workspace DIR [--summarize]]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lotterysearch as ls
from lotterysearch.pruning.pruners import IMP_TRAINING
from lotterysearch.settings import FitnessConfig, GAConfig, SearchConfig, SeedingConfig, validate
from lotterysearch.storage.store import Store

THETA0 = 0
STRENGTH = 0.49  # each layer's share pruned per mutation, the output layer half of it
# the new variation: the self-adapting strength, RigL's regrowth, per-child batch orders
ADAPTIVE = {
    "mutations": ("adaptive_prune",),
    "strength_tau": 0.3,
    "strength_min": 0.1,
    "strength_max": 0.8,
    "regrow": 0.2,
    "order_seeds": True,
}


def config(variant: str, workspace: Path, data_dir: str) -> ls.SearchConfig:
    """The search on θ₀: SynFlow seeds from θ₀ (the dense mask, and one a magnitude prune sparser), every child
    mutated by ``magnitude_prune`` at ``STRENGTH``, no crossover, IMP's training as the fitness; with
    ``ADAPTIVE`` on top for "adaptive"."""
    ga = GAConfig(
        population=8,
        generations=4,
        crossover_rate=0.0,
        mutation_rate=1.0,
        mutation_strength=STRENGTH,
        crossovers=("layer",),
        mutations=("magnitude_prune",),
        align=False,
    )
    if variant == "adaptive":
        ga = dataclasses.replace(ga, **ADAPTIVE)
    return validate(
        SearchConfig(
            name=f"variation-pilot-{variant}",
            dataset="mnist",
            model="mlp:784-300-100-10:glorot",
            seed=THETA0,
            workspace=str(workspace),
            data_dir=data_dir,
            seeding=SeedingConfig(
                init_seeds=(THETA0,), compressions=(1.0, round(1 / (1 - STRENGTH), 3)), random_share=0.0
            ),
            ga=ga,
            fitness=FitnessConfig(
                **dataclasses.asdict(IMP_TRAINING),
                init_seeds=(THETA0,),
                mode="ticket",
                successive_halving=False,
            ),
        )
    )


def ancestors(ind: ls.Individual, by_id: dict[int, ls.Individual]) -> set[int]:
    out, todo = set(), list(ind.parents)
    while todo:
        i = todo.pop()
        if i not in out:
            out.add(i)
            todo.extend(by_id[i].parents)
    return out


def lineages(population: Sequence[ls.Individual], everyone: Sequence[ls.Individual]) -> dict[str, Any]:
    """The diversity numbers of the module docstring, for one final population."""
    by_id = {i.id: i for i in everyone}
    above = set().union(*(ancestors(i, by_id) for i in population))
    leaves = {i.packed for i in population if i.id not in above}
    roots = {min(ancestors(i, by_id) | {i.id}) if i.parents else i.id for i in population}
    kids: dict[int, set[bytes]] = {}
    for i in everyone:
        if len(i.parents) == 1:
            kids.setdefault(i.parents[0], set()).add(i.packed)
    return {
        "lineages": len(leaves),
        "distinct_masks": len({i.packed for i in population}),
        "seeds_descended_from": len(roots),
        "parents_with_2plus_child_masks": sum(len(v) >= 2 for v in kids.values()),
        "parents": len(kids),
    }


def run(variant: str, data_dir: str, root: Path) -> dict[str, Any]:
    """Run ``variant``'s search in ``root / variant`` and summarize it."""
    t0 = time.monotonic()
    with ls.search(config(variant, root / variant, data_dir), local=True):
        pass
    return {**summarize(root / variant), "seconds": round(time.monotonic() - t0, 1)}


def summarize(workspace: Path) -> dict[str, Any]:
    """The numbers of one finished search in ``workspace`` (its only run), read from its store."""
    store = Store.open(workspace, readonly=True)
    try:
        (record,) = store.runs()
        everyone = store.individuals(record.id)
        population = store.individuals(record.id, store.last_generation(record.id).population)
        classes = store.classes(record.id).values()
    finally:
        store.close()
    best = max(population, key=lambda i: i.accuracy)
    out = {
        **lineages(population, everyone),
        "trained": len(classes),
        "steps": sum(c.steps for c in classes),
        "best_accuracy": best.accuracy,
        "best_density": best.density,
        "densities": sorted(round(i.density, 4) for i in population),
    }
    strengths = [i.genes["strength"][0] for i in everyone if i.genes and "strength" in i.genes]
    if strengths:
        out["strengths"] = {"min": min(strengths), "max": max(strengths), "n": len(strengths)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="/work/shared/data/mnist")
    parser.add_argument("--out", default="")
    parser.add_argument("--variants", nargs="+", default=["magnitude_prune", "adaptive"])
    parser.add_argument("--workspace", default="", help="keep the runs here (default: a temporary folder)")
    parser.add_argument("--summarize", action="store_true", help="only read the finished runs in --workspace")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.workspace or tmp)
        if args.summarize:
            results = {v: summarize(root / v) for v in args.variants}
        else:
            results = {v: run(v, args.data_dir, root) for v in args.variants}
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
