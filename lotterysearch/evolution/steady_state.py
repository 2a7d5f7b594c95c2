"""The steady-state (asynchronous) search: NSGA-II without generation barriers, so no worker waits.

The generational loop (``loop.SearchLoop``) waits, each generation, for its slowest evaluation while the
other workers idle, and makes every child on the driver. Here the driver only picks parents and keeps the
evaluators' queue full; each child is made where it is scored:

  parents (binary tournament on rank and crowding, from the population as it stands) ─► a ``BreedJob``
  (the parents' packed masks and the child's own seed) ─► on a worker: variation, class key, lookup in the
  classes the driver published ─► training only for a class it did not know ─► on the driver: the archive
  decides (a class two workers trained at once is recorded once, from the first result) ─► every
  ``select_every`` arrivals, NSGA-II survivor selection over the population and the arrivals ─► every
  ``population`` arrivals one storage commit: a generation of the store (its arrivals, the population,
  front, hypervolume and the driver's RNG state), so the store, reports and front read the same.

The run's last generation does not wait for its slowest evaluations: once every child of the budget is
made, spare children keep the idle workers busy, and the first arrivals fill the generation. Spares still
running then (or arriving together with the last) are dropped. On a parallel evaluator the run then ends
when a generation's worth of children has arrived, not when its heavy-tailed straggler does; in process
(``LocalEvaluator``: one call at a time, results in order) there is nothing to overtake, and no spares.

What it keeps of the generational loop's guarantees:

* nothing trained is lost: each result is committed (``record_evaluations``, the results that arrived
  together in one transaction) before the driver uses it; a resumed run puts every class trained after the
  last commit into its next generation, as an individual with the id it was trained for (operator
  ``recovered``; its parents are not stored with the class);
* each child is a pure function of its parents and its seed (``evaluators.breed_child``), wherever it is
  made; with an evaluator that returns results in a fixed order (``LocalEvaluator``, the benchmark's
  simulated cluster) the whole run is reproducible bit for bit;
* not kept: on Ray results arrive in the order the workers finish, which decides the parents of later
  children, so two runs with one seed differ, and a resumed run does not retrace the killed one (children
  in flight at the kill are made again from the restored population, not the same ones).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

import numpy as np

from lotterysearch.errors import LotterySearchError
from lotterysearch.evolution import selection
from lotterysearch.evolution.loop import (
    GenerationLedger,
    GenerationReport,
    RunStorage,
    SearchLoop,
    class_record,
    record_evaluations,
)
from lotterysearch.evolution.pareto import Objective
from lotterysearch.evolution.problem import MaskProblem
from lotterysearch.execution.evaluators import BreedJob, BreedResult, EvalResult, Evaluator, LocalEvaluator
from lotterysearch.runs.ledger import step_flops
from lotterysearch.storage.store import ClassRecord, Individual


def child_seed(run_seed: int, child_id: int) -> int:
    """The seed of one child's own generator: independent streams per (run, child) (``SeedSequence``)."""
    return int(np.random.SeedSequence([run_seed, child_id]).generate_state(1, np.uint64)[0])


class SteadyStateLoop(SearchLoop):
    """A run's steady-state loop: generation 0 is seeded and trained as in ``SearchLoop``; after it,
    ``ga.generations × ga.population`` children stream through the evaluator without barriers.

    ``in_flight``: children queued or running at once (default: the evaluator's ``capacity``, one call per
    worker, but no more than the population, plus a quarter of that more, so that a freed worker's next job
    waits for it while the driver is busy; without a ``capacity``, the population). More would only make
    children of an older population: each job's parents are drawn when it is queued. ``select_every``:
    arrivals between survivor selections (default population / 4: a selection over 1 280 individuals and
    ranking the new population cost about 30 ms, a tenth of a millisecond per child). ``spares``: whether the run's last generation is filled
    by its first arrivals while spare children keep the workers busy (default: on for any evaluator but the
    in-process one). Beside ``SearchLoop``'s steps a subclass may override ``arrival`` (one child's result).
    """

    def __init__(
        self,
        problem: MaskProblem,
        storage: RunStorage,
        run_id: str,
        evaluator: Evaluator,
        *,
        in_flight: int | None = None,
        select_every: int | None = None,
        spares: bool | None = None,
    ) -> None:
        super().__init__(problem, storage, run_id, evaluator)
        self.in_flight = in_flight
        self.select_every = select_every or max(1, self.cfg.ga.population // 4)
        self.spares = not isinstance(evaluator, LocalEvaluator) if spares is None else spares
        self.wasted = 0  # trainings of a class another worker had trained meanwhile
        self.dropped = 0  # spare children that arrived after the run's last generation was full
        self._recovered: list[Individual] = []
        self._order: list | None = None  # the population's crowded order (``selection.crowded_order``)
        self._trained = 0  # classes trained by this object (the evaluation listeners' count)
        self._unheard: list[EvalResult] = []  # trained results the listeners hear of once committed
        self._budget = 0
        self._seconds: dict[int, float] = {}  # training seconds of each arrival not yet committed, by id

    def _select(self, arrivals: Sequence[Individual]) -> None:
        super()._select(arrivals)
        self._order = None

    def select_parents(self, objectives: Sequence[Objective], k: int) -> list[int]:
        """``SearchLoop.select_parents`` from the population's ``objectives``, its rank and crowding computed
        once per population (they change only with it)."""
        if self._order is None:
            self._order = selection.crowded_order(objectives)
        return selection.select_parents(objectives, k, self.rng, self._order)

    def restore(self) -> SteadyStateLoop:
        """``SearchLoop.restore``, plus every class trained after the last commit as an individual of the
        next generation (nothing a killed driver received is lost)."""
        super().restore()
        if self.generation >= 0:
            self._recovered = [self._recover(key) for key in self.archive if self._orphaned(key)]
        return self

    def _orphaned(self, key: str) -> bool:
        return self.archive.get(key).individual_id not in self.everyone

    def _recover(self, key: str) -> Individual:
        """A class trained after the last commit: its training's steps and seconds count in its generation."""
        rec: ClassRecord = self.archive.get(key)
        mask = self.archive.representative(key)
        self._seconds[rec.individual_id] = rec.wall_time
        return self._child(
            rec.individual_id, (), "recovered", rec.representative, mask.density(), rec, steps=rec.steps
        )

    def _child(
        self,
        id: int,
        parents: tuple[int, ...],
        operator: str,
        packed: bytes,
        density: float,
        rec: ClassRecord,
        steps: int = 0,
    ) -> Individual:
        return Individual(
            run_id=self.run_id,
            id=id,
            generation=self.generation + 1,
            packed=packed,
            parents=parents,
            operator=operator,
            origin="child",
            class_key=rec.key,
            accuracy=rec.accuracy,
            density=density,
            effective_density=rec.effective_density,
            evaluated=rec.individual_id == id,
            fidelity=rec.fidelity,
            steps=steps,
            shapes=self.problem.shapes,
        )

    # ---- driving ------------------------------------------------------------------------------
    def run(self, generations: int | None = None) -> None:
        stop = self.cfg.ga.generations if generations is None else self.generation + generations
        stop = min(stop, self.cfg.ga.generations)
        if self.generation < 0 and stop >= 0:
            super().step()  # generation 0: the seeds, trained fully, as the generational loop does
        if self.generation < stop:
            self._stream(stop)

    def step(self) -> GenerationReport:
        """One generation's worth of arrivals (generation 0: the seeds)."""
        if self.generation < 0:
            return super().step()
        reports: list[GenerationReport] = []
        self.listeners.append(reports.append)
        try:
            self._stream(self.generation + 1)
        finally:
            self.listeners.remove(reports.append)
        return reports[-1]

    def _capacity(self) -> int:
        if self.in_flight is not None:
            return max(1, self.in_flight)
        capacity = getattr(self.evaluator, "capacity", None)
        mu = self.cfg.ga.population
        if not capacity:
            return mu
        running = min(mu, int(capacity))
        return running + max(1, running // 4)

    def _stream(self, stop: int) -> None:
        """Make, score and commit children until generation ``stop`` is committed."""
        mu = self.cfg.ga.population
        arrived, self._recovered = list(self._recovered), []
        for ind in arrived:
            self.everyone[ind.id] = ind
        pending = list(arrived)  # arrivals not yet through a survivor selection
        budget = (stop - self.generation) * mu - len(arrived)
        self._budget = self._trained + budget
        next_id = 1 + max(
            max(self.everyone, default=-1), *(self.archive.get(k).individual_id for k in self.archive)
        )
        queue: deque[BreedJob] = deque()
        made = outstanding = received = 0
        spares = self.spares and stop >= self.cfg.ga.generations  # nothing follows the last generation
        capacity = self._capacity()
        refill = max(1, capacity // 64)  # children made at once, unless the queue ran dry
        steps_before = self.steps_spent
        self.evaluator.publish(list(self.archive))

        def top_up() -> None:
            nonlocal made, outstanding, next_id
            left = budget - made  # children of the budget not yet made
            if spares and received < budget:
                left = max(left, capacity - outstanding)
            n = min(capacity - outstanding, left)
            # parents in batches: one shuffle of the population serves n/2 tournaments
            if n <= 0 or (n < min(refill, left) and outstanding > 0):
                return
            picks = self.select_parents([ind.objectives for ind in self.population], 2 * n)
            for a, b in zip(picks[0::2], picks[1::2], strict=True):
                pa, pb = self.population[a], self.population[b]
                queue.append(
                    BreedJob(
                        next_id, (pa.id, pb.id), (pa.packed, pb.packed), child_seed(self.cfg.seed, next_id)
                    )
                )
                next_id += 1
            made += n
            outstanding += n

        def commit_if_full() -> None:
            nonlocal arrived, pending, steps_before
            if len(arrived) < mu:
                return
            self._select(pending)
            pending = []
            self._commit(arrived, steps_before)
            arrived, steps_before = [], self.steps_spent

        while len(arrived) >= mu:  # recovered classes alone can fill a generation
            commit_if_full()
        top_up()
        variation = self.problem.variation()
        groups = self.evaluator.breed(queue, variation)
        for group in groups:
            outstanding -= len(group)
            records: list[ClassRecord] = []
            for res in group:
                if received == budget:  # a spare, after the last generation filled up
                    self.dropped += 1
                    continue
                received += 1
                ind = self.arrival(res, records)
                self.everyone[ind.id] = ind
                arrived.append(ind)
                pending.append(ind)
                if len(arrived) >= mu:  # the store's generation boundary: its classes first
                    self._flush(records)
                    records = []
                    commit_if_full()
                elif len(pending) >= self.select_every:
                    self._select(pending)
                    pending = []
            self._flush(records)
            if received == budget:
                break
            top_up()
        queue.clear()
        close = getattr(groups, "close", None)
        if close is not None:  # spares still running: the evaluator stops waiting for them
            close()
        if arrived:  # only when the evaluator ended early: what arrived still counts
            self._flush([])
            self._select(pending)
            self._commit(arrived, steps_before)

    def arrival(self, res: BreedResult, records: list[ClassRecord]) -> Individual:
        """The individual of one child; a class new to the archive becomes a record of ``records``."""
        rec = self.archive.get(res.class_key)
        steps = 0
        if res.objectives is not None:
            self.steps_spent += res.objectives.steps
            steps = res.objectives.steps  # a class another worker trained meanwhile was trained all the same
            self._seconds[res.id] = res.wall_time
            if rec is None:
                o = res.objectives
                rec = class_record(
                    self.run_id, res.class_key, res.packed, res, 1.0, res.id, version=self.key_version
                )
                records.append(rec)
                self.archive.add_packed(rec.key, res.packed, self.problem.shapes, rec)
                self._unheard.append(
                    EvalResult(rec.key, o, res.node, res.hostname, res.wall_time, res.attempts, res.pid)
                )
            else:
                self.wasted += 1
        elif rec is None:
            raise LotterySearchError(
                f"an evaluator skipped class '{res.class_key}' as known, but the driver never published it"
            )
        return self._child(res.id, res.parents, res.operator, res.packed, res.density, rec, steps)

    def generation_ledger(self, new: Sequence[Individual]) -> GenerationLedger | None:
        """Generation 0 as ``SearchLoop`` counts it; after it, the arrivals' trainings (``runs.ledger``): no
        critical path per generation (the run's is its longest lineage chain)."""
        counted = super().generation_ledger(new)
        if counted is not None:
            return counted
        count = step_flops(self.cfg.model, self.cfg.fitness.batch_size)
        trained = [ind for ind in new if ind.steps]
        return GenerationLedger(
            steps=sum(ind.steps or 0 for ind in new),
            critical_path=None,
            flops=float(sum((ind.steps or 0) * count(ind.mask) for ind in trained)),
            seconds=sum(self._seconds.pop(ind.id, 0.0) for ind in new),
        )

    def _flush(self, records: Sequence[ClassRecord]) -> None:
        """Commit the new classes now, then tell the evaluators they are known and the listeners."""
        if not records:
            return
        record_evaluations(self.storage, self.run_id, records)
        self.evaluator.publish([r.key for r in records])
        unheard, self._unheard = self._unheard, []
        for res in unheard:
            self._trained += 1
            for listener in self.evaluation_listeners:
                listener(res, self._trained, self._budget)
