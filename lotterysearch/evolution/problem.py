"""The search problem: masks of one model on one dataset, scored by a short training run.

``MaskProblem`` owns what is searched over and how it starts (the seeded population); how a mask is scored
is an evaluator's business (``evaluators``), how masks evolve the search loop's (``search``). A
``Candidate`` is a mask not yet evaluated: a seed, or a child of the variation operators.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from lotterysearch.core.data import Dataset, load_dataset
from lotterysearch.core.masks import Mask, chain_arrays, layerwise_shuffle
from lotterysearch.core.models import build_model, input_width
from lotterysearch.evolution import operators
from lotterysearch.execution import backend
from lotterysearch.execution.evaluators import Evaluator
from lotterysearch.pruning.pruners import prune
from lotterysearch.settings import SearchConfig
from lotterysearch.training.fitness import Objectives, evaluate_masks


@dataclass(frozen=True)
class Candidate:
    """A mask waiting for its objectives: where it came from (``origin``: a seed such as
    ``synflow:seed=2:rho=100``, or ``child``), its parents' ids and the operators that made it."""

    mask: Mask
    origin: str
    parents: tuple[int, ...] = ()
    operator: str = ""


def search_data(cfg: SearchConfig) -> Dataset:
    """The search's dataset (validation split seeded by ``cfg.seed``), checked against the model's inputs."""
    data = load_dataset(cfg.dataset, cfg.seed, data_dir=cfg.data_dir or None)
    data.check_input_width(cfg.model, input_width(build_model(cfg.model, 0)), label="field 'model':")
    return data


class MaskProblem:
    """Masks of ``cfg.model`` on ``cfg.dataset``: the layer shapes, the data (loaded once, on first use) and
    the initial population."""

    def __init__(self, cfg: SearchConfig, data: Dataset | None = None) -> None:
        self.cfg = cfg
        self.shapes = Mask.ones(build_model(cfg.model, 0)).shapes
        self._data = data

    @property
    def data(self) -> Dataset:
        if self._data is None:
            self._data = search_data(self.cfg)
        return self._data

    def evaluator(self, *, local: bool | None = None, address: str | None = None) -> Evaluator:
        """The evaluator the config names (``evaluator = "ray"`` or ``"local"``; ``local`` overrides it), for
        Ray at ``address``, else ``[ray] address``, else a local Ray."""
        cfg = self.cfg
        fitness = dataclasses.replace(cfg.fitness, keep_weights=True) if self.keeps_weights else cfg.fitness
        return backend.evaluator(
            self.data,
            cfg.model,
            fitness,
            cfg.mode,
            local=backend.runs_locally(cfg.evaluator, local),
            address=address or cfg.ray.address or None,
            ray=cfg.ray,
        )

    def dense_objectives(self) -> Objectives:
        """The dense network's objectives under the search's fitness (every weight kept, the same init seeds,
        steps and batch order), trained here: what a progress line's accuracies are to be read against."""
        dense = Mask.ones(build_model(self.cfg.model, 0))
        (objectives,) = evaluate_masks([dense], self.cfg.model, self.data, self.cfg.fitness, self.cfg.mode)
        return objectives

    def seeds(self, rng: np.random.Generator) -> list[Candidate]:
        """SynFlow masks from every init seed at every compression, random controls with their per-layer
        densities, then move-mutated copies of SynFlow masks to fill the population (``SeedingConfig``)."""
        s, size = self.cfg.seeding, self.cfg.ga.population
        pruned: list[tuple[str, Mask]] = []
        for rho in s.compressions:
            for seed in s.init_seeds:
                mask = prune(
                    build_model(self.cfg.model, seed), s.pruner, rho, iterations=s.iterations, seed=seed
                )
                pruned.append((f"{s.pruner}:seed={seed}:rho={rho:g}", mask))
        n_random = round(s.random_share * size)
        chosen = [Candidate(mask, origin) for origin, mask in pruned]
        for i in range(size - n_random - len(pruned)):
            origin, mask = pruned[i % len(pruned)]
            moved = operators.move_mutation(mask, rng, self.cfg.ga.mutation_strength)
            chosen.append(Candidate(moved, origin + "+move"))
        for i in range(n_random):
            origin, mask = pruned[i % len(pruned)]
            chosen.append(Candidate(layerwise_shuffle(mask, rng), "random" + origin[len(s.pruner) :]))
        return chosen

    def variation(self) -> operators.VariationConfig:
        g = self.cfg.ga
        return operators.VariationConfig(
            cx_rate=g.crossover_rate,
            mut_rate=g.mutation_rate,
            mutation_strength=g.mutation_strength,
            crossovers=g.crossovers,
            mutations=g.mutations,
            align=g.align,
        )

    @property
    def keeps_weights(self) -> bool:
        """Whether variation reads trained weights (the magnitude mutations), so evaluations must keep them."""
        return not operators.WEIGHTED_MUTATIONS.isdisjoint(self.variation().mutations)

    def children(
        self,
        parents: Sequence[tuple[int, Mask]],
        rng: np.random.Generator,
        weights: Callable[[int], tuple[Mask, Mapping[str, np.ndarray]]] | None = None,
    ) -> list[Candidate]:
        """Offspring of ``(id, mask)`` parents in tournament order (``operators.vary``). ``weights(i)``: the
        mask that was trained for parent i's class (its representative) and its trained weights, which the
        magnitude mutations read on the child's positions. In topology mode they are relabelled from the
        representative onto the child's neurons (``operators.trained_weights_for``). In ticket mode the
        representative is the parent itself and a position is a weight of θ₀: nothing is relabelled, and the
        child's positions the parent did not train get weight 0."""
        ticket = self.cfg.fitness.mode == "ticket"

        def trained(i: int, child: Mask) -> Mapping[str, np.ndarray]:
            assert weights is not None
            representative, w = weights(i)
            if child == representative:
                return w
            if ticket:
                return {
                    n: np.asarray(w[n]) * x for n, x in zip(child.names, chain_arrays(child), strict=True)
                }
            return operators.trained_weights_for(child, representative, w)

        kids = operators.vary([m for _, m in parents], rng, self.variation(), trained if weights else None)
        return [Candidate(c.mask, "child", tuple(parents[p][0] for p in c.parents), c.operator) for c in kids]
