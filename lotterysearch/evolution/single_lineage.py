"""The population-of-one control (``ga.control = "single_lineage"``): the search's own mutation operators on
one lineage, for the steps a search spent, so that what the population and its selection add is measured
against a (1+1) evolutionary algorithm under the same fitness.

Generation 0 trains one founder, the pruner's mask from the first init seed at the first compression
(``seeding.init_seeds[0]``, ``seeding.compressions[0]``). Each later generation breeds one child of the one
parent with the configured mutations (every child is mutated: crossover of a mask with itself is the mask),
trains it unless its class is known, and keeps it unless the parent dominates it on (accuracy ↑, density ↓).
The run ends once its stored trainings hold ``ga.control_steps`` steps (the last training may pass it).
Storage, resume and the readers are the generation loop's: every generation is committed with its RNG state.
"""

from __future__ import annotations

import dataclasses
import math

from lotterysearch.core.models import build_model
from lotterysearch.evolution.loop import GenerationReport, SearchLoop
from lotterysearch.evolution.problem import Candidate, MaskProblem
from lotterysearch.pruning.pruners import prune
from lotterysearch.storage.store import Individual

IDLE_LIMIT = 1_000  # generations in a row whose child trained nothing (every one a known class) end the run


def dominates(a: Individual, b: Individual) -> bool:
    """``a`` is at least as accurate and as sparse as ``b``, and strictly better in one."""
    return a.accuracy >= b.accuracy and a.density <= b.density and a.objectives != b.objectives


class SingleLineageLoop(SearchLoop):
    """One lineage, one child per generation, until ``ga.control_steps`` training steps are stored."""

    def __init__(self, problem: MaskProblem, *args, **kwargs) -> None:  # noqa: ANN002, ANN003 - SearchLoop's
        super().__init__(problem, *args, **kwargs)
        cfg = problem.cfg
        self.budget = cfg.ga.control_steps
        one = dataclasses.replace(cfg.ga, mutation_rate=1.0, crossover_rate=0.0)
        self._breeder = MaskProblem(dataclasses.replace(cfg, ga=one), data=problem._data)
        self._idle = 0

    @property
    def spent(self) -> int:
        """Training steps of every stored training of the run (each class is trained once, fully)."""
        return sum(self.archive.get(k).steps for k in self.archive)

    def planned_generations(self) -> int:
        """Generations if every child is a new class: the founder, then one training per generation."""
        per_training = self.cfg.fitness.steps * len(self.cfg.fitness.init_seeds)
        return max(0, math.ceil(self.budget / per_training) - 1)

    def _founder(self) -> Candidate:
        s = self.cfg.seeding
        seed, rho = s.init_seeds[0], s.compressions[0]
        mask = prune(build_model(self.cfg.model, seed), s.pruner, rho, iterations=s.iterations, seed=seed)
        return Candidate(mask, f"{s.pruner}:seed={seed}:rho={rho:g}")

    def _child(self) -> Candidate:
        (parent,) = self.population
        weights = (lambda j: self._trained(parent)) if self.problem.keeps_weights else None
        (child,) = self._breeder.children([(parent.id, parent.mask)], self.rng, weights)
        return child

    def step(self) -> GenerationReport:
        seeding = self.generation < 0
        steps_before = self.steps_spent
        candidate = self._founder() if seeding else self._child()
        first_id = max(self.everyone, default=-1) + 1
        (ind,) = self.evaluate([candidate], first_id, halving=False)
        self.everyone[ind.id] = ind
        if seeding or not dominates(self.population[0], ind):
            self.population = [ind]
        self._idle = 0 if ind.evaluated else self._idle + 1
        return self._commit([ind], steps_before)

    @property
    def done(self) -> bool:
        return self.spent >= self.budget or self._idle >= IDLE_LIMIT

    def run(self, generations: int | None = None) -> None:
        """Run until the budget is spent (or ``generations`` more generations)."""
        stop = math.inf if generations is None else self.generation + generations
        while not self.done and self.generation < stop:
            self.step()
