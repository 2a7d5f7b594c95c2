"""The search: SynFlow-seeded NSGA-II over masks, isomorphs skipped, fitness on Ray, every step durable.

One generation (``Search.step``):
  parents (binary tournament on rank and crowding) ─► variation (align, crossover, mutation, repair)
  ─► class key of each child ─► known class: reuse its objectives │ new class: train it on Ray
  ─► NSGA-II survivor selection over parents + children ─► one store transaction (children, population,
  front, hypervolume, RNG state).
Every trained class is committed the moment its result arrives, so a driver killed mid-generation loses no
training; resuming replays the generation from the stored RNG state and finds those classes in the store.

With ``[fitness] successive_halving = true`` the children's new classes are trained in rungs (``_evaluate``):
all for steps/η^(R-1), the best 1/η by non-dominated rank for η times longer, ... up to the full budget.
Each class records the fidelity (share of the full budget) its objectives were measured at; survivor
selection ranks full-fidelity individuals first (``select_survivors``) and only they make the front.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lotterysearch import canon, evolution
from lotterysearch.cluster import EvalResult, EvaluatorPool, connect
from lotterysearch.config import SearchConfig, config_hash, parse_config, to_dict, to_toml
from lotterysearch.data import Dataset, load_dataset
from lotterysearch.errors import StoreError
from lotterysearch.fitness import FitnessConfig
from lotterysearch.masks import Mask, layerwise_shuffle
from lotterysearch.models import build_model, input_width
from lotterysearch.pruning import prune
from lotterysearch.store import ClassRecord, GenerationRecord, IndividualRecord, Store

REF_POINT = (0.0, 1.0)  # (accuracy, density): hypervolume is the area the front dominates above it


@dataclass
class Individual:
    id: int
    mask: Mask
    generation: int
    origin: str
    parents: tuple[int, ...] = ()
    operator: str = ""
    class_key: str = ""
    accuracy: float = float("nan")
    evaluated: bool = False
    fidelity: float = 1.0
    density: float = field(init=False)
    effective_density: float = field(init=False)

    def __post_init__(self) -> None:
        self.density = self.mask.density()
        self.effective_density = self.mask.effective_density()

    @property
    def objectives(self) -> tuple[float, float]:
        return (self.accuracy, self.density)


@dataclass(frozen=True)
class GenerationReport:
    """What one generation did; the progress display and tests subscribe to these."""

    run_id: str
    generation: int
    generations: int
    evaluated: int
    skipped: int
    best_accuracy: float
    hypervolume: float
    front_size: int
    elapsed: float
    steps: int = 0  # training steps spent in this generation (all rungs, all init seeds)

    def line(self) -> str:
        return (
            f"gen {self.generation:>3}/{self.generations}  evaluated {self.evaluated:>3}  "
            f"skipped {self.skipped:>3} (isomorphs)  best acc {self.best_accuracy:.4f}  "
            f"HV {self.hypervolume:.4f}  front {self.front_size:>3}  {self.elapsed:7.1f} s"
        )


def fitness_config(cfg: SearchConfig) -> FitnessConfig:
    f = cfg.fitness
    return FitnessConfig(f.steps, f.optimizer, f.lr, f.batch_size, f.init_seeds, cfg.mode)


def halving_rungs(cfg: SearchConfig) -> list[int]:
    """Training steps of each rung of successive halving, smallest first: steps·η^-(R-1), ..., steps·η^-1,
    steps. Without halving, one rung of the full budget."""
    f = cfg.fitness
    if not f.successive_halving:
        return [f.steps]
    eta, n = f.halving_rate, f.halving_rungs
    return sorted({max(1, round(f.steps / eta ** (n - 1 - r))) for r in range(n)})


def select_survivors(objectives: list[tuple[float, float]], fidelities: list[float], k: int) -> list[int]:
    """NSGA-II survivor selection that ranks every individual measured at the full budget before any measured
    at a lower fidelity (a class successive halving stopped early): a short run's accuracy is a pessimistic
    estimate, not comparable with a full one. Without halving every fidelity is 1 and this is ``select_nsga2``.
    """
    full = [i for i, f in enumerate(fidelities) if f >= 1.0]
    rest = [i for i, f in enumerate(fidelities) if f < 1.0]
    chosen = [full[j] for j in evolution.select_nsga2([objectives[i] for i in full], min(k, len(full)))]
    if len(chosen) < k:
        chosen += [rest[j] for j in evolution.select_nsga2([objectives[i] for i in rest], k - len(chosen))]
    return chosen


def variation_config(cfg: SearchConfig) -> evolution.VariationConfig:
    g = cfg.ga
    return evolution.VariationConfig(
        cx_rate=g.crossover_rate,
        mut_rate=g.mutation_rate,
        mutation_strength=g.mutation_strength,
        crossovers=g.crossovers,
        align=g.align,
    )


def search_data(cfg: SearchConfig) -> Dataset:
    """The search's dataset (validation split seeded by ``cfg.seed``), checked against the model's inputs."""
    data = load_dataset(cfg.dataset, cfg.seed, data_dir=cfg.data_dir or None)
    data.check_input_width(cfg.model, input_width(build_model(cfg.model, 0)), label="field 'model':")
    return data


class Search:
    """A running search. Use ``Search.start`` or ``Search.resume``, then ``run()``."""

    def __init__(self, cfg: SearchConfig, store: Store, run_id: str, address: str | None) -> None:
        self.cfg, self.store, self.run_id, self.address = cfg, store, run_id, address
        self.model_shapes = Mask.ones(build_model(cfg.model, 0)).shapes
        self.rng = np.random.default_rng(cfg.seed)
        self.population: list[Individual] = []
        self.everyone: dict[int, Individual] = {}
        self.archive = canon.ClassArchive()
        for rec in store.classes(run_id).values():
            self.archive.add(Mask.unpack(rec.representative, self.model_shapes), rec)
        self.generation = -1
        self.listeners: list[Callable[[GenerationReport], None]] = []
        # called as each training returns: (result, trained so far, to train this generation)
        self.evaluation_listeners: list[Callable[[EvalResult, int, int], None]] = []
        self._data: Dataset | None = None
        self._pool: EvaluatorPool | None = None
        self.steps_spent = 0  # training steps since this object was made (all rungs, all init seeds)
        self._t0 = time.monotonic()
        self._elapsed_before = 0.0

    # ---- construction -------------------------------------------------------------------------
    @classmethod
    def start(cls, cfg: SearchConfig, workspace: str | Path, address: str | None = None) -> Search:
        """Check what can fail before anything is written (the data, the model's input width, the Ray
        address), then create the run."""
        data = search_data(cfg)
        connect(address or cfg.ray.address or None)
        store = Store.open(workspace, create=True)
        shapes = Mask.ones(build_model(cfg.model, 0)).shapes
        run_id = store.create_run(
            cfg.name,
            to_toml(cfg),
            json.dumps(to_dict(cfg)),
            config_hash(cfg),
            cfg.seed,
            list(REF_POINT),
            {n: list(s) for n, s in shapes.items()},
        )
        search = cls(cfg, store, run_id, address)
        search._data = data
        return search

    @classmethod
    def resume(cls, run_id: str, workspace: str | Path, address: str | None = None) -> Search:
        store = Store.open(workspace, create=False)
        run = store.run(run_id)
        cfg = parse_config(run.config_toml, f"run {run_id}")
        connect(address or cfg.ray.address or None)
        search = cls(cfg, store, run_id, address)
        last = store.last_generation(run_id)
        if last is not None:
            for rec in store.individuals(run_id):
                ind = Individual(
                    rec.id,
                    Mask.unpack(rec.mask, search.model_shapes),
                    rec.generation,
                    rec.origin,
                    tuple(rec.parents),
                    rec.operator,
                    rec.class_key,
                    rec.accuracy,
                    bool(rec.evaluated),
                    rec.fidelity,
                )
                search.everyone[ind.id] = ind
            search.population = [search.everyone[i] for i in last.population]
            search.rng.bit_generator.state = last.rng_state["numpy"]
            search.generation = last.gen
            search._elapsed_before = last.elapsed
        return search

    # ---- data and evaluation ------------------------------------------------------------------
    @property
    def data(self) -> Dataset:
        if self._data is None:
            self._data = search_data(self.cfg)
        return self._data

    @property
    def pool(self) -> EvaluatorPool:
        if self._pool is None:
            connect(self.address or self.cfg.ray.address or None)
            r = self.cfg.ray
            self._pool = EvaluatorPool(
                self.data,
                self.cfg.model,
                fitness_config(self.cfg),
                num_evaluators=r.num_evaluators or None,
                cpus_per_eval=r.cpus_per_eval,
                gpus_per_eval=r.gpus_per_eval,
            )
        return self._pool

    def _evaluate(self, individuals: list[Individual], halving: bool = True) -> tuple[int, int]:
        """Give every individual objectives; train only what is not known. Returns (trained, skipped).

        The candidates are this generation's classes not already measured at the full budget in an earlier
        generation. With successive halving (configured, and ``halving``: the children of a generation, not
        the seeds) each rung measures the candidates left at its budget, and the best 1/η by non-dominated
        rank (``select_nsga2`` on accuracy at that rung and density) go on to the next. A class measured
        only at a low fidelity in an earlier generation is a candidate again: it competes at every rung with
        numbers measured at that rung's budget, so comparisons stay fair.

        Accuracy at a budget is a pure function of the class, the budget and the config, so the store serves
        as a cache: it keeps each class at the highest fidelity measured (its objectives), lower rungs that
        it no longer holds are trained again. A driver killed mid-generation therefore replays the generation
        to exactly the decisions of an uninterrupted run, training again only what it cannot look up.
        """
        first_id = min(ind.id for ind in individuals)
        reps: dict[str, Individual] = {}  # class → its first individual in this generation
        for ind in individuals:
            ind.class_key = canon.class_key(ind.mask)
            reps.setdefault(ind.class_key, ind)
        candidates = [k for k in reps if not self._settled(k, first_id)]
        rungs = halving_rungs(self.cfg) if halving else [self.cfg.fitness.steps]
        for r, steps in enumerate(rungs):
            if not candidates:
                break
            accuracy = self._measure(candidates, reps, steps)
            if r < len(rungs) - 1:
                keep = math.ceil(len(candidates) / self.cfg.fitness.halving_rate)
                objectives = [(accuracy[k], reps[k].density) for k in candidates]
                candidates = [candidates[i] for i in sorted(evolution.select_nsga2(objectives, keep))]
        trained = 0
        for ind in individuals:
            rec = self.archive.get(ind.class_key)
            ind.accuracy, ind.fidelity = rec.accuracy, rec.fidelity
            ind.evaluated = rec.individual_id == ind.id
            trained += ind.evaluated
        return trained, len(individuals) - trained

    def _settled(self, key: str, first_id: int) -> bool:
        """Measured at the full budget before this generation began (an isomorph hit: nothing to train)."""
        rec = self.archive.get(key)
        return rec is not None and rec.fidelity >= 1.0 and rec.individual_id < first_id

    def _measure(self, keys: list[str], reps: dict[str, Individual], steps: int) -> dict[str, float]:
        """Accuracy of each class after ``steps`` steps: from the store when it holds that fidelity, else
        trained (on the class's first mask ever seen) and recorded when it raises the stored fidelity."""
        fidelity = steps / self.cfg.fitness.steps
        accuracy: dict[str, float] = {}
        masks: dict[str, Mask] = {}
        for key in keys:
            rec = self.archive.get(key)
            if rec is not None and rec.fidelity == fidelity:
                accuracy[key] = rec.accuracy
            else:
                masks[key] = self.archive.representative(key) if key in self.archive else reps[key].mask
        if not masks:
            return accuracy
        jobs = [(key, mask.pack()) for key, mask in masks.items()]
        override = None if steps == self.cfg.fitness.steps else steps
        for done, res in enumerate(self.pool.evaluate(jobs, self.model_shapes, override), start=1):
            o = res.objectives
            accuracy[res.key] = o.accuracy
            self.steps_spent += o.steps
            old = self.archive.get(res.key)
            if old is None or fidelity > old.fidelity:
                rec = ClassRecord(
                    run_id=self.run_id,
                    key=res.key,
                    algo_version=canon.VERSION,
                    representative=masks[res.key].pack(),
                    accuracy=o.accuracy,
                    loss=o.loss,
                    effective_density=o.effective_density,
                    steps=o.steps,
                    fidelity=fidelity,
                    node=res.node,
                    wall_time=res.wall_time,
                    attempts=res.attempts,
                    individual_id=reps[res.key].id,
                )
                self.store.record_evaluation(self.run_id, rec)
                if old is None:
                    self.archive.add(masks[res.key], rec)
                else:
                    self.archive.set_payload(res.key, rec)
            for listener in self.evaluation_listeners:
                listener(res, done, len(jobs))
        return accuracy

    # ---- generations --------------------------------------------------------------------------
    def _new_id(self) -> int:
        return max(self.everyone, default=-1) + 1

    def seed_population(self) -> list[Individual]:
        """SynFlow masks from every init seed at every compression, random controls, then move-mutated
        copies of SynFlow masks to fill the population (see ``config.SeedingConfig``)."""
        s, size = self.cfg.seeding, self.cfg.ga.population
        synflow: list[tuple[str, Mask]] = []
        for rho in s.compressions:
            for seed in s.init_seeds:
                mask = prune(
                    build_model(self.cfg.model, seed), s.pruner, rho, iterations=s.iterations, seed=seed
                )
                synflow.append((f"{s.pruner}:seed={seed}:rho={rho:g}", mask))
        n_random = round(s.random_share * size)
        chosen = list(synflow)
        for i in range(size - n_random - len(synflow)):
            origin, mask = synflow[i % len(synflow)]
            moved = evolution.move_mutation(mask, self.rng, self.cfg.ga.mutation_strength)
            chosen.append((origin + "+move", moved))
        for i in range(n_random):
            origin, mask = synflow[i % len(synflow)]
            chosen.append(("random" + origin[len(s.pruner) :], layerwise_shuffle(mask, self.rng)))
        first = self._new_id()
        return [Individual(first + i, m, 0, origin) for i, (origin, m) in enumerate(chosen)]

    def _offspring(self) -> list[Individual]:
        objs = [ind.objectives for ind in self.population]
        picks = evolution.select_parents(objs, len(self.population), self.rng)
        children = evolution.vary(
            [self.population[i].mask for i in picks], self.rng, variation_config(self.cfg)
        )
        first = self._new_id()
        return [
            Individual(
                first + k,
                child.mask,
                self.generation + 1,
                "child",
                tuple(self.population[picks[p]].id for p in child.parents),
                child.operator,
            )
            for k, child in enumerate(children)
        ]

    def step(self) -> GenerationReport:
        """Run one generation (generation 0 seeds and evaluates the initial population) and commit it."""
        if self.generation < 0:
            new = self.seed_population()
        else:
            new = self._offspring()
        steps_before = self.steps_spent
        # The seeds are trained fully: every later generation descends from them, and the front starts from
        # SynFlow masks measured at every compression. Halving stops hopeless *children* early.
        trained, skipped = self._evaluate(new, halving=self.generation >= 0)
        for ind in new:
            self.everyone[ind.id] = ind
        if self.generation < 0:
            self.population = new
        else:
            pool = self.population + new
            keep = select_survivors(
                [ind.objectives for ind in pool], [ind.fidelity for ind in pool], self.cfg.ga.population
            )
            self.population = [pool[i] for i in keep]
        self.generation += 1
        front = self.front()
        hv = evolution.hypervolume([ind.objectives for ind in front], REF_POINT)
        elapsed = self._elapsed_before + time.monotonic() - self._t0
        report = GenerationReport(
            self.run_id,
            self.generation,
            self.cfg.ga.generations,
            trained,
            skipped,
            max(ind.accuracy for ind in self.population),
            hv,
            len(front),
            elapsed,
            self.steps_spent - steps_before,
        )
        self.store.commit_generation(
            self.run_id,
            self.generation,
            [self._record(ind) for ind in new],
            GenerationRecord(
                run_id=self.run_id,
                gen=self.generation,
                population=[i.id for i in self.population],
                front=[i.id for i in front],
                hypervolume=hv,
                evaluated=trained,
                skipped=skipped,
                best_accuracy=report.best_accuracy,
                rng_state={"numpy": self.rng.bit_generator.state},
                elapsed=elapsed,
            ),
        )
        for listener in self.listeners:
            listener(report)
        return report

    def front(self) -> list[Individual]:
        """Non-dominated individuals over everything measured at the full budget so far (a class successive
        halving stopped early is not on it); copies with the same class and objectives are listed once (the
        earliest), as ``report.front_rows`` lists them."""
        everyone = sorted((i for i in self.everyone.values() if i.fidelity >= 1.0), key=lambda ind: ind.id)
        front, seen = [], set()
        for i in evolution.pareto_front([ind.objectives for ind in everyone]):
            ind = everyone[i]
            if (ind.class_key, *ind.objectives) not in seen:
                seen.add((ind.class_key, *ind.objectives))
                front.append(ind)
        return front

    def _record(self, ind: Individual) -> IndividualRecord:
        return IndividualRecord(
            run_id=self.run_id,
            id=ind.id,
            generation=ind.generation,
            mask=ind.mask.pack(),
            parents=list(ind.parents),
            operator=ind.operator,
            origin=ind.origin,
            class_key=ind.class_key,
            accuracy=ind.accuracy,
            density=ind.density,
            effective_density=ind.effective_density,
            evaluated=int(ind.evaluated),
            fidelity=ind.fidelity,
        )

    def run(self) -> str:
        """Run the remaining generations; the run ends 'finished', or 'interrupted' / 'failed'.

        Holds the run's driver lock throughout (``Store.driving``): a second driver of the same run fails
        before writing anything."""
        with self.store.driving(self.run_id):
            self.store.set_status(self.run_id, "running")
            try:
                while self.generation < self.cfg.ga.generations:
                    self.step()
            except KeyboardInterrupt:
                self.store.set_status(self.run_id, "interrupted")
                raise
            except BaseException:
                self.store.set_status(self.run_id, "failed")
                raise
            finally:
                if self._pool is not None:
                    self._pool.shutdown()
            self.store.set_status(self.run_id, "finished")
        return self.run_id


def check_resumable(store: Store, run_id: str) -> None:
    run = store.run(run_id)
    if run.status == "finished":
        raise StoreError(f"run '{run_id}' has already finished; nothing to resume")
