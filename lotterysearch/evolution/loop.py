"""The generation loop of a search: NSGA-II over masks, isomorphs skipped, successive halving, every step handed to storage.

One generation (``SearchLoop.step``):
  parents (binary tournament on rank and crowding) ─► variation (align, crossover, mutation, repair)
  ─► class key of each child ─► known class: reuse its objectives │ new class: the evaluator trains it
  ─► NSGA-II survivor selection over parents + children ─► one storage commit (children, population,
  front, hypervolume, RNG state).
Every trained class is handed to storage the moment its result arrives (the results of one evaluator call
arrive together and are committed in one transaction), so a driver killed mid-generation loses no
training; resuming replays the generation from the stored RNG state and finds those classes.

The driver stays off the evaluations' critical path: class keys are computed by the evaluator, where the
training runs (``Evaluator.class_keys``; a clone's key is its parent's), and only the lookup in the archive,
which decides what is trained, happens here. Selection (DEAP's NSGA-II, ``selection``) and variation stay on
the driver, drawing from the run's one generator, so a run is reproducible bit for bit; ``steady_state``
moves variation to the workers for runs that may trade that for never waiting on a generation.

The loop knows the problem (``MaskProblem``), an ``Evaluator`` and a ``RunStorage`` only through their
methods: no Ray, SQL or printing here (progress goes to ``listeners``).

With ``[fitness] successive_halving = true`` the children's new classes are trained in rungs (``evaluate``):
all for steps/η^(R-1), the best 1/η by non-dominated rank for η times longer, ... up to the full budget.
Each class records the fidelity (share of the full budget) its objectives were measured at; survivor
selection ranks full-fidelity individuals first and only they make the front (``pareto``).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from lotterysearch.core import canon
from lotterysearch.core.masks import Mask
from lotterysearch.errors import StoreError
from lotterysearch.evolution import pareto, selection
from lotterysearch.evolution.problem import Candidate, MaskProblem
from lotterysearch.execution.evaluators import BreedResult, EvalResult, Evaluator, class_keys_of, ready_groups
from lotterysearch.runs.ledger import step_flops
from lotterysearch.storage.store import ClassRecord, GenerationRecord, Individual, Reevaluation
from lotterysearch.training.fitness import fitness_key, key_version
from lotterysearch.training.trained import unpack_weights


class RunStorage(Protocol):
    """What the loop writes and reads back on resume (``store.Store`` is the SQLite one)."""

    def record_evaluation(self, run_id: str, record: ClassRecord) -> None: ...

    def commit_generation(
        self, run_id: str, gen: int, individuals: Sequence[Individual], record: GenerationRecord
    ) -> None: ...

    def classes(self, run_id: str) -> dict[str, ClassRecord]: ...

    def individuals(self, run_id: str, ids: Sequence[int] | None = None) -> list[Individual]: ...

    def last_generation(self, run_id: str) -> GenerationRecord | None: ...

    def trained_weights(self, run_id: str, key: str) -> bytes | None: ...


class ReevaluationStorage(Protocol):
    """What elite re-evaluation (``ga.reevaluate_elites``) also needs of the storage (``store.Store`` has it)."""

    def record_reevaluations(self, run_id: str, records: Sequence[Reevaluation]) -> None: ...

    def reevaluations(self, run_id: str) -> list[Reevaluation]: ...


def record_evaluations(storage: RunStorage, run_id: str, records: Sequence[ClassRecord]) -> None:
    """Commit ``records`` in one transaction where the storage can (``Store.record_evaluations``)."""
    many = getattr(storage, "record_evaluations", None)
    if many is not None:
        many(run_id, records)
        return
    for rec in records:
        storage.record_evaluation(run_id, rec)


@dataclass(frozen=True)
class GenerationReport:
    """What one generation did; the progress display, the Python API and tests subscribe to these."""

    run_id: str
    generation: int
    generations: int
    evaluated: int
    skipped: int
    best_accuracy: float
    hypervolume: float
    front_size: int
    elapsed: float
    steps: int = 0  # training steps spent in this generation (all rungs, all init seeds, re-evaluations)
    fitness_steps: int = 0  # the steps of one fitness training: what ``best_accuracy`` was measured after

    def line(self) -> str:
        after = f" after {self.fitness_steps} steps" if self.fitness_steps else ""
        return (
            f"gen {self.generation:>3}/{self.generations}  evaluated {self.evaluated:>3}  "
            f"skipped {self.skipped:>3} (isomorphs)  best val acc{after} {self.best_accuracy:.4f}  "
            f"HV {self.hypervolume:.4f}  front {self.front_size:>3}  {self.elapsed:7.1f} s"
        )


@dataclass
class GenerationLedger:
    """One generation's compute ledger as the loop counts it (stored with the generation, read by
    ``runs.ledger``): training steps over every rung and init seed, the critical path in steps (None: a
    steady-state generation, whose path is its lineages'), FLOPs on kept weights, training seconds, and the
    steps of each class trained (given to its generation's first individual of that class)."""

    steps: int = 0
    critical_path: int | None = 0
    flops: float = 0.0
    seconds: float = 0.0
    own: dict[str, int] = field(default_factory=dict)


def class_record(
    run_id: str,
    key: str,
    representative: bytes,
    res: EvalResult | BreedResult,
    fidelity: float,
    individual_id: int,
    version: str = canon.VERSION,
) -> ClassRecord:
    """What storage keeps of a class trained for ``individual_id``: its objectives (``res.objectives``),
    where and how long it ran, and the fidelity they were measured at."""
    o = res.objectives
    assert o is not None
    return ClassRecord(
        run_id=run_id,
        key=key,
        algo_version=version,
        representative=representative,
        accuracy=o.accuracy,
        loss=o.loss,
        effective_density=o.effective_density,
        steps=o.steps,
        fidelity=fidelity,
        node=res.node,
        wall_time=res.wall_time,
        attempts=res.attempts,
        individual_id=individual_id,
        weights=o.weights,
    )


def halving_rungs(steps: int, successive_halving: bool, eta: int, rungs: int) -> list[int]:
    """Training steps of each rung of successive halving, smallest first: steps·η^-(R-1), ..., steps·η^-1,
    steps. Without halving, one rung of the full budget."""
    if not successive_halving:
        return [steps]
    return sorted({max(1, round(steps / eta ** (rungs - 1 - r))) for r in range(rungs)})


class SearchLoop:
    """One run's generation loop; ``restore`` picks a stored run up after its last committed generation.

    A subclass may override the public steps to watch or replace them (``benchmarks/scale.py`` times each
    and replays the pure ones): ``evaluate`` (the objectives of new candidates), ``select_parents``,
    ``select_survivors``, ``hypervolume`` and ``front``. Variation is the problem's (``MaskProblem.children``)
    and every write the storage's: pass a problem or a ``RunStorage`` of your own for those.
    """

    def __init__(self, problem: MaskProblem, storage: RunStorage, run_id: str, evaluator: Evaluator) -> None:
        self.problem, self.cfg = problem, problem.cfg
        self.storage, self.run_id, self.evaluator = storage, run_id, evaluator
        self.rng = np.random.default_rng(self.cfg.seed)
        self.population: list[Individual] = []
        self.everyone: dict[int, Individual] = {}
        self.fitness_mode = self.cfg.fitness.mode
        self.key_version = key_version(self.fitness_mode)
        self.archive = canon.ClassArchive()
        for rec in storage.classes(run_id).values():  # stored keys of this key version are trusted
            if rec.algo_version == self.key_version:
                self.archive.add_packed(rec.key, rec.representative, problem.shapes, rec)
            else:
                mask = Mask.unpack(rec.representative, problem.shapes)
                self.archive.add(mask, rec, key=fitness_key(mask, self.fitness_mode))
        self.generation = -1
        self.listeners: list[Callable[[GenerationReport], None]] = []
        # called as each training returns: (result, trained so far, to train this generation)
        self.evaluation_listeners: list[Callable[[EvalResult, int, int], None]] = []
        self.steps_spent = 0  # training steps since this object was made (all rungs, all init seeds)
        self._front: list[Individual] = []  # ``front()`` of the first ``_fronted`` individuals of everyone
        self._fronted = 0
        self._t0 = time.monotonic()
        self._elapsed_before = 0.0
        # elite re-evaluation: every stored one by class, and the classes whose mean the store already serves
        # (their generation is committed, so ``classes`` and ``individuals`` read averaged)
        stored = getattr(storage, "reevaluations", None)
        self._reevaluations: dict[str, Reevaluation] = (
            {r.key: r for r in stored(run_id)} if stored is not None else {}
        )
        self._averaged: set[str] = set()
        # the compute ledger (``runs.ledger``): each class's fidelity before this generation (the highest its
        # committed individuals carry), and what ``evaluate`` counted for the generation being made
        self._prior_fidelity: dict[str, float] = {}
        self._ledger: GenerationLedger | None = None
        self._step_flops: dict[str, int] = {}  # a class's training FLOPs per step (``_class_flops``)
        self._train_seconds = 0.0

    def restore(self) -> SearchLoop:
        """Continue after the last committed generation: its population, RNG state and clock."""
        last = self.storage.last_generation(self.run_id)
        if last is not None:
            self.everyone = {ind.id: ind for ind in self.storage.individuals(self.run_id)}
            self._front, self._fronted = [], 0
            self.population = [self.everyone[i] for i in last.population]
            self.rng.bit_generator.state = last.rng_state["numpy"]
            self.generation = last.gen
            self._elapsed_before = last.elapsed
            self._averaged = {k for k, r in self._reevaluations.items() if r.gen <= last.gen}
            self._prior_fidelity = {}
            self._remember_fidelities(self.everyone.values())
        return self

    def _remember_fidelities(self, individuals: Iterable[Individual]) -> None:
        for ind in individuals:
            old = self._prior_fidelity.get(ind.class_key)
            self._prior_fidelity[ind.class_key] = ind.fidelity if old is None else max(old, ind.fidelity)

    # ---- evaluation ---------------------------------------------------------------------------
    def evaluate(self, new: list[Candidate], first_id: int, halving: bool) -> list[Individual]:
        """Objectives for every candidate (ids ``first_id``, ``first_id + 1``, ...); train only what is not
        known.

        The candidates to train are this generation's classes not already measured at the full budget in an
        earlier generation. With successive halving (configured, and ``halving``: the children of a
        generation, not the seeds) each rung measures the classes left at its budget, and the best 1/η by
        non-dominated rank (``select_nsga2`` on accuracy at that rung and density) go on to the next. A class
        measured only at a low fidelity in an earlier generation is a candidate again: it competes at every
        rung with numbers measured at that rung's budget, so comparisons stay fair.

        Accuracy at a budget is a pure function of the class, the budget and the config, so storage serves as
        a cache: it keeps each class at the highest fidelity measured (its objectives), lower rungs that it
        no longer holds are trained again. A driver killed mid-generation therefore replays the generation to
        exactly the decisions of an uninterrupted run, training again only what it cannot look up.
        """
        keys = self._class_keys(new)
        reps: dict[str, tuple[int, Mask]] = {}  # class → its first (id, mask) in this generation
        for i, (c, key) in enumerate(zip(new, keys, strict=True)):
            reps.setdefault(key, (first_id + i, c.mask))
        todo = [k for k in reps if not self._settled(k, first_id)]
        f = self.cfg.fitness
        rungs = halving_rungs(f.steps, f.successive_halving and halving, f.halving_rate, f.halving_rungs)
        ledger = GenerationLedger()
        self._train_seconds = 0.0
        for r, steps in enumerate(rungs):
            if not todo:
                break
            self._count(ledger, todo, reps, steps)
            accuracy = self._measure(todo, reps, steps)
            if r < len(rungs) - 1:
                keep = math.ceil(len(todo) / f.halving_rate)
                objectives = [(accuracy[k], reps[k][1].density()) for k in todo]
                todo = [todo[i] for i in sorted(selection.select_nsga2(objectives, keep))]
        ledger.seconds = self._train_seconds
        self._ledger = ledger
        return [
            self._individual(
                c,
                first_id + i,
                key,
                self.archive.get(key),
                ledger.own.get(key, 0) if reps[key][0] == first_id + i else 0,
            )
            for i, (c, key) in enumerate(zip(new, keys, strict=True))
        ]

    def _count(
        self, ledger: GenerationLedger, todo: list[str], reps: dict[str, tuple[int, Mask]], steps: int
    ) -> None:
        """Add one rung's trainings to the generation's ledger (``runs.ledger``): those an uninterrupted run
        trains, the classes whose fidelity before this generation is not this rung's. Counted from the
        decisions, not from what ``_measure`` finds in storage, so a resumed generation counts what the
        uninterrupted one did. The rung's trainings run side by side: the critical path grows by one
        training of ``steps`` (the init seeds, too, run side by side)."""
        f = self.cfg.fitness
        trained = [k for k in todo if self._prior_fidelity.get(k) != steps / f.steps]
        if not trained:
            return
        seeds = len(f.init_seeds)
        ledger.critical_path += steps
        for key in trained:
            ledger.own[key] = ledger.own.get(key, 0) + steps * seeds
            ledger.steps += steps * seeds
            ledger.flops += float(steps * seeds * self._class_flops(key, reps))

    def _class_flops(self, key: str, reps: dict[str, tuple[int, Mask]]) -> int:
        """FLOPs of one training step of class ``key``: of the mask it is trained on (its representative, or
        this generation's first member for a new class), which never changes, so it is counted once."""
        flops = self._step_flops.get(key)
        if flops is None:
            mask = self.archive.representative(key) if key in self.archive else reps[key][1]
            flops = self._step_flops[key] = step_flops(self.cfg.model, self.cfg.fitness.batch_size)(mask)
        return flops

    def _individual(
        self, c: Candidate, id: int, key: str, rec: ClassRecord, steps: int | None = None
    ) -> Individual:
        """An individual of candidate ``c`` with its class's objectives and the training ``steps`` spent on
        it. Its effective density is the class's: isomorphic effective subnetworks have equally many weights,
        so it is the same number ``Mask.effective_density`` would give, without sweeping the mask again here."""
        ind = Individual(
            run_id=self.run_id,
            id=id,
            generation=self.generation + 1,
            packed=c.mask.pack(),
            parents=c.parents,
            operator=c.operator,
            origin=c.origin,
            class_key=key,
            accuracy=rec.accuracy,
            density=c.mask.density(),
            effective_density=rec.effective_density,
            evaluated=rec.individual_id == id,
            fidelity=rec.fidelity,
            steps=steps,
            shapes=c.mask.shapes,
        )
        ind.__dict__["mask"] = c.mask  # ``Individual.mask``'s cache: nothing to unpack
        return ind

    def _class_keys(self, new: Sequence[Candidate]) -> list[str]:
        """Class key of each candidate: a clone's is its parent's (the same mask), the others are computed
        by the evaluator, where the training runs."""
        keys: list[str | None] = []
        for c in new:
            parent = (
                self.everyone.get(c.parents[0]) if c.operator == "clone" and len(c.parents) == 1 else None
            )
            keys.append(None if parent is None else parent.class_key)
        todo = [i for i, k in enumerate(keys) if k is None]
        for i, key in zip(
            todo, class_keys_of(self.evaluator, [new[i].mask for i in todo], self.fitness_mode), strict=True
        ):
            keys[i] = key
        return [str(k) for k in keys]

    def _settled(self, key: str, first_id: int) -> bool:
        """Measured at the full budget before this generation began (an isomorph hit: nothing to train)."""
        rec = self.archive.get(key)
        return rec is not None and pareto.is_full(rec.fidelity) and rec.individual_id < first_id

    def _measure(self, keys: list[str], reps: dict[str, tuple[int, Mask]], steps: int) -> dict[str, float]:
        """Accuracy of each class after ``steps`` steps: from storage when it holds that fidelity, else
        trained (on the class's first mask ever seen) and recorded when it raises the stored fidelity."""
        full = self.cfg.fitness.steps
        fidelity = steps / full
        accuracy: dict[str, float] = {}
        masks: dict[str, Mask] = {}
        for key in keys:
            rec = self.archive.get(key)
            if rec is not None and rec.fidelity == fidelity:
                accuracy[key] = rec.accuracy
            else:
                masks[key] = self.archive.representative(key) if key in self.archive else reps[key][1]
        if not masks:
            return accuracy
        jobs = list(masks.items())
        override = None if steps == full else steps
        done = 0
        for group in ready_groups(self.evaluator, jobs, override):
            records = []
            for res in group:
                o = res.objectives
                accuracy[res.key] = o.accuracy
                self.steps_spent += o.steps
                self._train_seconds += res.wall_time
                old = self.archive.get(res.key)
                if old is None or fidelity > old.fidelity:
                    records.append(self._record(res, masks[res.key], fidelity, reps[res.key][0]))
            record_evaluations(self.storage, self.run_id, records)  # before anything else uses them
            for rec in records:
                if rec.key in self.archive:
                    self.archive.set_payload(rec.key, rec)
                else:
                    self.archive.add_packed(rec.key, rec.representative, self.problem.shapes, rec)
            for res in group:
                done += 1
                for listener in self.evaluation_listeners:
                    listener(res, done, len(jobs))
        return accuracy

    def _record(self, res: EvalResult, mask: Mask, fidelity: float, individual_id: int) -> ClassRecord:
        """The class record of one training result (``mask``: what was trained, the representative)."""
        return class_record(
            self.run_id, res.key, mask.pack(), res, fidelity, individual_id, version=self.key_version
        )

    # ---- generations --------------------------------------------------------------------------
    def _offspring(self) -> list[Candidate]:
        objs = [ind.objectives for ind in self.population]
        picks = self.select_parents(objs, len(self.population))
        parents = [self.population[i] for i in picks]
        weights = (lambda j: self._trained(parents[j])) if self.problem.keeps_weights else None
        return self.problem.children([(p.id, p.mask) for p in parents], self.rng, weights)

    def _trained(self, ind: Individual) -> tuple[Mask, dict[str, np.ndarray]]:
        """``ind``'s class: the mask trained for it and that training's weights (from storage)."""
        representative = self.archive.representative(ind.class_key)
        packed = self.storage.trained_weights(self.run_id, ind.class_key)
        if packed is None:
            raise StoreError(f"run '{self.run_id}': class '{ind.class_key}' has no trained weights stored")
        return representative, unpack_weights(packed, representative)

    # ---- noise-aware selection ---------------------------------------------------------------------
    def reevaluate_elites(self) -> list[str]:
        """Train each class on the population's front once more under a second order of minibatches (same
        initial weights: θ₀ in ticket mode, every init seed in topology mode) and give it the mean accuracy
        of the two trainings, before the generation breeds, so that tournaments and survivor selection
        compare elites on less batch-order noise. A class is re-evaluated once; its steps count as this
        generation's. Returns the classes averaged now.

        Each result is stored as it arrives, tagged with the generation about to be bred, and counts in the
        store's accuracies only once that generation is committed: a driver killed before then replays the
        generation from the same (single-training) accuracies, finds the stored trainings and trains nothing
        again."""
        gen = self.generation + 1
        keys = list(dict.fromkeys(ind.class_key for ind in pareto.front(self.population)))
        pending = [k for k in keys if k not in self._averaged]
        todo = [(k, self.archive.representative(k)) for k in pending if k not in self._reevaluations]
        storage: ReevaluationStorage = self.storage  # type: ignore[assignment]
        for group in ready_groups(self.evaluator, todo, None, order=1) if todo else ():
            records = []
            for res in group:
                o = res.objectives
                self.steps_spent += o.steps
                records.append(
                    Reevaluation(
                        self.run_id, res.key, 1, gen, o.accuracy, o.loss, o.steps, res.node, res.wall_time
                    )
                )
            storage.record_reevaluations(self.run_id, records)
            self._reevaluations.update((r.key, r) for r in records)
        for key in pending:
            self._average(key, self._reevaluations[key].accuracy)
        if pending:  # objectives changed: the cached front is no longer the front
            self._front, self._fronted = [], 0
        return pending

    def _count_reevaluations(self, keys: Sequence[str]) -> None:
        """Add the re-evaluations made before this generation bred to its ledger: they run side by side (one
        full-budget training on the critical path), each class one training per init seed. Counted from the
        decision (the classes averaged now), so a resumed generation counts what the uninterrupted one did."""
        if not keys or self._ledger is None:
            return
        f, ledger = self.cfg.fitness, self._ledger
        seeds = len(f.init_seeds)
        if ledger.critical_path is not None:
            ledger.critical_path += f.steps
        for key in keys:
            ledger.steps += f.steps * seeds
            ledger.flops += float(f.steps * seeds * self._class_flops(key, {}))

    def _average(self, key: str, second: float) -> None:
        """Class ``key``'s accuracy becomes the mean of its first training and ``second`` (the store's
        ``_mean``, same order, same float), in the archive and on every full-fidelity member."""
        rec = self.archive.get(key)
        mean = (rec.accuracy + second) / 2
        self.archive.set_payload(key, dataclasses.replace(rec, accuracy=mean))
        for i, ind in self.everyone.items():
            if ind.class_key == key and pareto.is_full(ind.fidelity):
                new = dataclasses.replace(ind, accuracy=mean)
                if "mask" in ind.__dict__:
                    new.__dict__["mask"] = ind.__dict__["mask"]
                self.everyone[i] = new
        self.population = [self.everyone[ind.id] for ind in self.population]
        self._averaged.add(key)

    def step(self) -> GenerationReport:
        """Run one generation (generation 0 seeds and evaluates the initial population) and commit it."""
        seeding = self.generation < 0
        steps_before = self.steps_spent
        reevaluated = self.reevaluate_elites() if not seeding and self.cfg.ga.reevaluate_elites else []
        candidates = self.problem.seeds(self.rng) if seeding else self._offspring()
        # The seeds are trained fully: every later generation descends from them, and the front starts from
        # SynFlow masks measured at every compression. Halving stops hopeless *children* early.
        first_id = max(self.everyone, default=-1) + 1
        new = self.evaluate(candidates, first_id, halving=not seeding)
        self._count_reevaluations(reevaluated)
        for ind in new:
            self.everyone[ind.id] = ind
        if seeding:
            self.population = new
        else:
            self._select(new)
        return self._commit(new, steps_before)

    def _select(self, arrivals: Sequence[Individual]) -> None:
        """NSGA-II survivor selection over the population and ``arrivals`` (``select_survivors``)."""
        pool = self.population + list(arrivals)
        keep = self.select_survivors(
            [ind.objectives for ind in pool], [ind.fidelity for ind in pool], self.cfg.ga.population
        )
        self.population = [pool[i] for i in keep]

    def _commit(self, new: Sequence[Individual], steps_before: int) -> GenerationReport:
        """Commit the next generation: its ``new`` individuals, the population, front, hypervolume and RNG
        state in one storage transaction; then tell the listeners."""
        trained = sum(ind.evaluated for ind in new)
        self.generation += 1
        front = self.front()
        hv = self.hypervolume([ind.objectives for ind in front])
        elapsed = self._elapsed_before + time.monotonic() - self._t0
        ledger = self.generation_ledger(new)
        report = GenerationReport(
            self.run_id,
            self.generation,
            self.planned_generations(),
            trained,
            len(new) - trained,
            max(ind.accuracy for ind in self.population),
            hv,
            len(front),
            elapsed,
            self.steps_spent - steps_before,
            self.cfg.fitness.steps,
        )
        self.storage.commit_generation(
            self.run_id,
            self.generation,
            new,
            GenerationRecord(
                run_id=self.run_id,
                gen=self.generation,
                population=[i.id for i in self.population],
                front=sorted(i.id for i in front),
                hypervolume=hv,
                evaluated=trained,
                skipped=report.skipped,
                best_accuracy=report.best_accuracy,
                rng_state={"numpy": self.rng.bit_generator.state},
                elapsed=elapsed,
                steps=ledger.steps if ledger else None,
                critical_path_steps=ledger.critical_path if ledger else None,
                flops=ledger.flops if ledger else None,
                train_seconds=ledger.seconds if ledger else None,
            ),
        )
        self._remember_fidelities(new)
        for listener in self.listeners:
            listener(report)
        return report

    def generation_ledger(self, new: Sequence[Individual]) -> GenerationLedger | None:
        """The compute ledger of the generation of ``new`` (what ``evaluate`` counted; None if it did not)."""
        ledger, self._ledger = self._ledger, None
        return ledger

    # ---- selection: methods a subclass may override ------------------------------------------------
    def select_parents(self, objectives: Sequence[pareto.Objective], k: int) -> list[int]:
        """Indices of ``k`` parents among individuals of ``objectives``: binary tournaments on rank and
        crowding (``selection.select_parents``), drawn from the run's generator."""
        return selection.select_parents(objectives, k, self.rng)

    def select_survivors(
        self, objectives: Sequence[pareto.Objective], fidelities: Sequence[float], k: int
    ) -> list[int]:
        """Indices of the ``k`` survivors: NSGA-II, full-fidelity individuals ranked first
        (``selection.select_survivors``); a pure function of its arguments."""
        return selection.select_survivors(objectives, fidelities, k)

    def hypervolume(self, objectives: Sequence[pareto.Objective]) -> float:
        """Hypervolume of a front's ``objectives`` against the reference point (``pareto.hypervolume``)."""
        return pareto.hypervolume(objectives, pareto.REF_POINT)

    def front(self) -> list[Individual]:
        """The Pareto front over everything measured so far (``pareto.front``), kept up to date: the front
        of a set grown by some individuals is the front of its old front and the new ones (whatever the old
        front dominated stays dominated), so each call looks only at the individuals added since the last
        one (``everyone`` only grows: an id, once in, keeps its individual)."""
        if len(self.everyone) < self._fronted:  # replaced wholesale (``restore``)
            self._front, self._fronted = [], 0
        fresh = list(itertools.islice(self.everyone.values(), self._fronted, None))
        if fresh or not self._fronted:
            self._front = pareto.front(self._front + fresh)
            self._fronted = len(self.everyone)
        return list(self._front)

    def planned_generations(self) -> int:
        """The generations a progress line counts to (``GenerationReport.generations``)."""
        return self.cfg.ga.generations

    @property
    def done(self) -> bool:
        return self.generation >= self.cfg.ga.generations

    def run(self, generations: int | None = None) -> None:
        """Run ``generations`` more generations (default: up to the config's ``ga.generations``)."""
        stop = self.cfg.ga.generations if generations is None else self.generation + generations
        while self.generation < min(stop, self.cfg.ga.generations):
            self.step()
