"""Benchmark: the search driver at scale, on a simulated cluster of 1 to 1000 workers, against today's driver.

The real search loop, store (SQLite, as a search writes it) and class keys run here; only training is
simulated. ``SimCluster`` implements the ``evaluators.Evaluator`` protocol on a virtual clock: W workers,
each evaluation occupying one worker for its latency (fixed, or lognormal with σ = 1 and the same mean,
drawn from the class key, so every run sees the same numbers), objectives a deterministic function of the
class key and the effective density. The driver is one serial resource: its real CPU time (everything the
loop does between the simulator's calls; ``DriverClock``: this thread's CPU time, plus the store's waits for
the disk) advances the virtual clock, and workers wait for it. Work that the
new driver hands to the workers (class keys; in the steady-state mode variation too) is timed for real and
charged to a worker's timeline instead of the driver's. Utilisation = busy worker-time / (W × makespan),
busy time counting key and variation work as well as training (and the part of a spare child's training done
before a steady-state run ends, its last generation filled by the first arrivals: busy, not kept). Idle time
is split by cause: a worker waiting for a job (the driver had none for it yet: its work, or a generation
barrier) and the run's end (a worker done with its last call before the makespan).

Each worker holds two calls of one mask (running and next), as the Ray pool's evaluators do
(``in_flight_per_evaluator = 2``), and, as the pool does, every worker without a call gets one before any
worker its second (``Slots``); a freed worker gets its next job when the driver takes its result.
No network latency is simulated.

Drivers, all from the same committed generation 0 (population ``--population``, seeded as a search seeds):

* ``today``: the generational loop of commit ``BASELINE`` (read with ``git show``): keys on the driver
  (twice per new class), one store transaction per result (the store and the selection, ``selection``, are
  today's for every driver: ``benchmarks/selection.py`` compares selections);
* ``generational``: ``loop.SearchLoop`` now: keys on the workers, one transaction per group of results; the
  same individuals and fronts as ``today`` (checked: the run's stored individuals and generations,
  populations, fronts and hypervolumes, are equal);
* ``steady_state``: ``steady_state.SteadyStateLoop``: no generation barrier, children made on the workers.

Pure, deterministic steps (variation of the generational loops, class keys, survivor selection, a
steady-state child) are computed once per distinct input and their measured time charged again when the
same input recurs in another worker count or latency: the timelines are those of real runs, the machine
time is not spent 32 times. ``--cache DIR`` keeps those tables between runs of the benchmark (named by a
hash of the source that computes them); the driver's own work is always measured afresh.

The phase timers use the hooks the package offers, nothing of it is patched: a subclass of each loop
overrides its public steps (``evaluate``, ``select_parents``, ``select_survivors``, ``hypervolume``,
``front``, the steady state's ``arrival``), a subclass of ``MaskProblem`` its ``children`` (variation), the
loop writes through a ``RunStorage`` that times the store's writes, and the simulated cluster times its
``class_keys``. ``today``'s loop is this benchmark's own copy of old source, run against today's modules
under their old names; it calls its modules' functions directly, so its module gets timed copies of them.

Every figure is a ratio against another driver in the same run (``today`` is the baseline).

    python benchmarks/scale.py [--models mlp,lenet] [--workers 1,10,100,1000] [--latencies 0.1,1]
        [--kinds fixed,lognormal] [--generations 2] [--steady-generations N] [--population 1024]
        [--steady-workers 1,10,100,1000] [--drivers today,generational,steady_state] [--cache DIR]
        [--profile DIR] [--in-flight N]
"""

from __future__ import annotations

import argparse
import cProfile
import dataclasses
import functools
import hashlib
import heapq
import math
import os
import pickle
import shutil
import socket
import sys
import tempfile
import time
import types
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np
from benchtools import module_at

from lotterysearch import api
from lotterysearch.core import canon, masks
from lotterysearch.core.masks import Mask
from lotterysearch.evolution import loop, pareto, problem, steady_state
from lotterysearch.evolution import selection as selection_module
from lotterysearch.evolution.loop import SearchLoop
from lotterysearch.evolution.problem import Candidate, MaskProblem
from lotterysearch.execution import evaluators
from lotterysearch.execution.evaluators import BreedJob, BreedResult, EvalResult, breed_child
from lotterysearch.settings import GAConfig, SearchConfig, SeedingConfig
from lotterysearch.storage import store as store_module
from lotterysearch.storage.store import Store
from lotterysearch.training.fitness import Objectives

BASELINE = "9161e85"  # the driver before this benchmark's changes
# the code that makes children and class keys: a cache of them (``--cache``) is valid for this source only
PURE_SOURCES = (
    "evolution/operators.py",
    "core/alignment.py",
    "core/masks.py",
    "core/canon.py",
    "core/refinement.py",
    "evolution/problem.py",
    "execution/evaluators.py",
    "core/models.py",
)
ROOT = Path(__file__).resolve().parents[1]
MODELS = {"mlp": "mlp:40-100-100-10", "lenet": "mlp:784-300-100-10"}
PHASES = ("variation", "class_key", "archive", "selection", "store", "other")


# ---- timing ------------------------------------------------------------------------------------------
class DriverClock:
    """The driver's own time: CPU time of this thread (on a shared machine wall time also counts the time
    spent waiting for a core), plus the wall time the store waits for the disk (a commit's fsync holds the
    serial driver whatever the load): its wall time less its CPU time and less its waits for a core (the
    kernel's run-queue time of this thread, ``/proc/thread-self/schedstat``, where there is one)."""

    def __init__(self) -> None:
        self.io_wait = 0.0
        try:
            self._schedstat: int | None = os.open("/proc/thread-self/schedstat", os.O_RDONLY)
        except OSError:
            self._schedstat = None

    def __call__(self) -> float:
        return time.thread_time() + self.io_wait

    def queued(self) -> float:
        """Seconds this thread has waited for a core so far (0 where the kernel does not say)."""
        if self._schedstat is None:
            return 0.0
        return int(os.pread(self._schedstat, 100, 0).split()[1]) / 1e9

    def blocking(self, fn: Callable) -> Callable:
        def waited(*args: Any, **kwargs: Any) -> Any:
            wall, cpu, queued = time.perf_counter(), time.thread_time(), self.queued()
            try:
                return fn(*args, **kwargs)
            finally:
                idle = time.perf_counter() - wall - (time.thread_time() - cpu) - (self.queued() - queued)
                self.io_wait += max(0.0, idle)

        return waited


CLOCK = DriverClock()


class Profiler:
    """Exclusive real time per driver phase (a nested phase's time is its own, not its parent's), on a
    clock that stops while the simulator runs (its work is the workers', not the driver's)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.seconds: dict[str, float] = defaultdict(float)
        self.stack: list[list[Any]] = []
        self.owed = 0.0  # replayed seconds not yet on the virtual clock

    def reset(self) -> None:
        self.seconds.clear()
        self.owed = 0.0

    def run(self, name: str, fn: Callable, *args: Any, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)``, its time phase ``name``'s."""
        now = self.clock()
        if self.stack:
            self.seconds[self.stack[-1][0]] += now - self.stack[-1][1]
        self.stack.append([name, now])
        try:
            return fn(*args, **kwargs)
        finally:
            now = self.clock()
            top, start = self.stack.pop()
            self.seconds[top] += now - start
            if self.stack:
                self.stack[-1][1] = now

    def wrap(self, name: str, fn: Callable) -> Callable:
        """``fn``, timed as phase ``name``."""

        def timed(*args: Any, **kwargs: Any) -> Any:
            return self.run(name, fn, *args, **kwargs)

        return timed

    def charge(self, seconds: float) -> None:
        """Time a replayed step took when it was computed: the current phase's, and the driver's."""
        self.seconds[self.stack[-1][0] if self.stack else "other"] += seconds
        self.owed += seconds


class Memo:
    """Results of pure steps by input, with the seconds each took when computed."""

    def __init__(self) -> None:
        self.table: dict[Any, tuple[Any, float]] = {}

    def save(self, path: Path, encode: Callable[[Any], Any] = lambda v: v) -> None:
        with open(path, "wb") as f:
            pickle.dump({k: (encode(v), s) for k, (v, s) in self.table.items()}, f, pickle.HIGHEST_PROTOCOL)

    def load(self, path: Path, decode: Callable[[Any], Any] = lambda v: v) -> None:
        if path.is_file():
            with open(path, "rb") as f:
                self.table.update({k: (decode(v), s) for k, (v, s) in pickle.load(f).items()})

    def get(self, key: Any, compute: Callable[[], Any]) -> tuple[Any, float, bool]:
        hit = self.table.get(key)
        if hit is not None:
            return hit[0], hit[1], True
        t0 = CLOCK()
        out = compute()
        self.table[key] = (out, CLOCK() - t0)
        return out, self.table[key][1], False


def digest(*parts: bytes) -> bytes:
    h = hashlib.blake2b(digest_size=16)
    for p in parts:
        h.update(p)
    return h.digest()


# ---- the simulated cluster -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Latency:
    """Seconds one full-budget evaluation of a class occupies a worker: ``mean`` for every class, or
    lognormal (σ = 1) with that mean, drawn from the class key."""

    mean: float
    kind: str = "fixed"

    def of(self, key: str) -> float:
        if self.kind == "fixed":
            return self.mean
        u = (int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big") + 0.5) / 2**64
        return math.exp(math.log(self.mean) - 0.5 + NormalDist().inv_cdf(u))

    def label(self) -> str:
        return f"{self.mean:g} s {self.kind}"


def simulated_objectives(key: str, eff: float, density: float, steps: int) -> Objectives:
    """Accuracy rising with effective density ``eff``, spread by the class key: a pure function of the
    class."""
    h = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big") / 2**64
    acc = 0.1 + 0.85 * (1 - math.exp(-60 * eff)) * (0.9 + 0.1 * h)
    return Objectives(accuracy=acc, density=density, effective_density=eff, loss=1 - acc, steps=steps)


class Slots:
    """Free call slots of W workers, ``per_worker`` each, handed out as ``cluster.EvaluatorPool._dispatch`` does:
    every worker with no call gets one before any worker its second (longest waiting first within a level).
    A first-come deque of slots would queue a job behind a busy worker while another worker idles."""

    def __init__(self, workers: int, per_worker: int) -> None:
        self.calls = [0] * workers
        self.levels: list[deque[int]] = [deque(range(workers))] + [deque() for _ in range(per_worker - 1)]

    def __bool__(self) -> bool:
        return any(self.levels)

    def take(self) -> int:
        """A worker with the fewest calls; it now holds one more."""
        level = next(i for i, q in enumerate(self.levels) if q)
        w = self.levels[level].popleft()
        self.calls[w] += 1
        if level + 1 < len(self.levels):
            self.levels[level + 1].append(w)
        return w

    def release(self, w: int) -> None:
        """One call of worker ``w`` is done."""
        c = self.calls[w]
        if c < len(self.levels):
            self.levels[c].remove(w)
        self.calls[w] = c - 1
        self.levels[c - 1].append(w)


class SimCluster:
    """``Evaluator`` on a virtual clock (see the module docstring). ``t`` is the driver's virtual time."""

    def __init__(
        self,
        workers: int,
        latency: Latency,
        profiler: Profiler,
        keys: Memo,
        children: Memo,
        full_steps: int,
        shapes: dict[str, tuple[int, ...]],
    ) -> None:
        self.workers, self.latency, self.prof = workers, latency, profiler
        self.keys, self.children, self.full_steps, self.shapes = keys, children, full_steps, shapes
        self.t = 0.0
        self.free = [0.0] * workers  # when each worker's last assigned job ends
        self.open = Slots(workers, 2)  # free call slots
        self.busy = 0.0
        self.dropped = 0.0  # worker-seconds of calls the driver stopped waiting for (spares)
        self.starved = 0.0  # worker-seconds a worker waited for its next job
        self.tail = 0.0  # worker-seconds after a worker's last call, before the makespan
        self.kept = 0.0  # worker-seconds of trainings whose result the search kept
        self.known: set[str] = set()
        self.hidden = 0.0  # real seconds spent inside the simulator
        self._mark = CLOCK()
        self._entered = 0.0
        self._seq = 0

    # the driver's clock: real time outside the simulator, plus replayed steps
    def driver_clock(self) -> float:
        return CLOCK() - self.hidden

    def _enter(self) -> None:
        now = CLOCK()
        self.t += now - self._mark + self.prof.owed
        self.prof.owed = 0.0
        self._entered = now

    def _exit(self) -> None:
        now = CLOCK()
        self.hidden += now - self._entered
        self._mark = now

    def start(self) -> None:
        """The measured run starts now, at virtual time 0, every worker free."""
        self.t, self.busy, self.dropped, self.starved = 0.0, 0.0, 0.0, 0.0
        self.free = [0.0] * self.workers
        self._mark = CLOCK()
        self.prof.owed = 0.0

    def finish(self) -> float:
        """The makespan: the driver's virtual time at the end of the run."""
        self._enter()
        self._exit()
        self.tail = sum(max(0.0, self.t - f) for f in self.free)
        return self.t

    def _run_on(self, w: int, seconds: float) -> float:
        self.starved += max(0.0, self.t - self.free[w])
        start = max(self.free[w], self.t)
        self.free[w] = start + seconds
        self.busy += seconds
        return self.free[w]

    def _key(self, mask: Mask) -> tuple[str, float]:
        return self._packed_key(mask.pack(), lambda: mask)

    def _packed_key(self, packed: bytes, mask: Callable[[], Mask]) -> tuple[str, float]:
        key, seconds, _ = self.keys.get(digest(packed), lambda: canon.class_key(mask()))
        return key, seconds

    # ---- Evaluator --------------------------------------------------------------------------------
    @property
    def capacity(self) -> int:
        return self.workers

    def class_keys(self, masks: Sequence[Mask]) -> list[str]:
        """Keys computed on the workers, round robin; the driver waits for the last (phase ``class_key``)."""
        return self.prof.run("class_key", self._class_keys, masks)

    def _class_keys(self, masks: Sequence[Mask]) -> list[str]:
        self._enter()
        out, done = [], self.t
        for i, m in enumerate(masks):
            key, seconds = self._key(m)
            out.append(key)
            done = max(done, self._run_on(i % self.workers, seconds))
        self.t = done
        self._exit()
        return out

    def keep(self, key: str) -> None:
        """The steady-state search kept the training of class ``key``, which a worker ran for its latency."""
        self.kept += self.latency.of(key)

    def publish(self, keys: Iterable[str]) -> None:
        self.known.update(keys)

    def close(self) -> None:
        pass

    def evaluate(self, jobs: Sequence[tuple[str, Mask]], steps: int | None = None) -> Iterator[EvalResult]:
        for group in self.evaluate_ready(jobs, steps):
            yield from group

    def evaluate_ready(
        self, jobs: Sequence[tuple[str, Mask]], steps: int | None = None
    ) -> Iterator[list[EvalResult]]:
        steps = steps or self.full_steps

        def work(job: tuple[str, Mask]) -> tuple[float, EvalResult]:
            key, mask = job
            o = simulated_objectives(key, mask.effective_density(), mask.density(), steps)
            seconds = self.latency.of(key) * steps / self.full_steps
            self.kept += seconds  # the generational loop keeps every result it asked for
            return seconds, EvalResult(key, o, "sim", "sim", seconds, 1, 0)

        return self._stream(deque(jobs), work)

    def breed(self, jobs: deque[BreedJob], variation: Any) -> Iterator[list[BreedResult]]:
        shapes = self.shapes

        def work(job: BreedJob) -> tuple[float, BreedResult]:
            made: list[Mask] = []

            def make() -> tuple[bytes, str, tuple[int, ...], float, float]:
                child = breed_child([Mask.unpack(p, shapes) for p in job.packed], job.seed, variation)
                made.append(child.mask)
                m = child.mask
                return m.pack(), child.operator, child.parents, m.density(), m.effective_density()

            (packed, op, picked, density, eff), made_s, _ = self.children.get(
                digest(*job.packed, str(job.seed).encode()), make
            )
            key, key_s = self._packed_key(packed, lambda: made[0] if made else Mask.unpack(packed, shapes))
            seconds, o = made_s + key_s, None
            if key not in self.known:
                o = simulated_objectives(key, eff, density, self.full_steps)
                seconds += self.latency.of(key)
            parents = tuple(job.parents[p] for p in picked)
            return seconds, BreedResult(
                job.id, parents, packed, op, key, density, o, "sim", "sim", seconds, 1, 0
            )

        return self._stream(jobs, work)

    def _stream(self, queue: deque, work: Callable[[Any], tuple[float, Any]]) -> Iterator[list[Any]]:
        """Jobs of ``queue`` (live: the caller may append between groups) onto free call slots; results in
        order of completion, grouped when several have finished by the time the driver looks."""
        self._enter()
        events: list[tuple[float, int, int, Any, float, float]] = []

        def dispatch() -> None:
            while queue and self.open:
                w = self.open.take()
                seconds, result = work(queue.popleft())
                self._seq += 1
                end = self._run_on(w, seconds)
                heapq.heappush(events, (end, self._seq, w, result, seconds, end - seconds))

        dispatch()
        try:
            while events:
                end, _, w, result, _, _ = heapq.heappop(events)
                self.t = max(self.t, end)
                group = [result]
                self.open.release(w)
                while events and events[0][0] <= self.t:
                    _, _, w2, r2, _, _ = heapq.heappop(events)
                    group.append(r2)
                    self.open.release(w2)
                dispatch()
                self._exit()
                yield group
                self._enter()
                dispatch()
            self._exit()
        except GeneratorExit:  # the driver stopped waiting: running calls stop, their rest not busy
            self._enter()
            for end, _, w, _, seconds, start in events:
                done = max(0.0, min(end, self.t) - start)
                self.busy -= seconds - done
                self.dropped += seconds - done
                self.free[w] = min(self.free[w], max(start, self.t))
                self.open.release(w)
            self._exit()
            raise


# ---- drivers -------------------------------------------------------------------------------------------
# today's modules under the names the baseline's source imports them by (the flat layout of its commit)
BASELINE_NAMES = {
    "lotterysearch.canon": canon,
    "lotterysearch.evaluators": evaluators,
    "lotterysearch.masks": masks,
    "lotterysearch.pareto": pareto,
    "lotterysearch.problem": problem,
    "lotterysearch.store": store_module,
}


@dataclass(frozen=True)
class Baseline:
    """``loop`` as of commit ``BASELINE``: its source read from git into a fresh module, run against today's
    modules (``BASELINE_NAMES``), selecting with today's ``selection`` (imported under the name it had then,
    ``nsga2``), so that the drivers differ only in the loop."""

    loop: types.ModuleType
    nsga2: types.ModuleType

    @classmethod
    def load(cls) -> Baseline:
        sys.modules.update(BASELINE_NAMES)  # for the imports of the old source only: gone once it is loaded
        try:
            sys.modules["lotterysearch.nsga2"] = selection_module
            old_loop = module_at(BASELINE, "lotterysearch/loop.py", "scale_baseline_loop")
        finally:
            for name in [*BASELINE_NAMES, "lotterysearch.nsga2"]:
                sys.modules.pop(name, None)
        return cls(old_loop, selection_module)


def replayed_selection(
    memo: Memo,
    prof: Profiler,
    name: str,
    select: Callable,
    objectives: Sequence,
    fidelities: Sequence,
    k: int,
) -> list[int]:
    """``select(objectives, fidelities, k)`` (a pure function, ``name`` its module's), from ``memo`` when
    computed before, its seconds then charged again."""
    key = digest(name.encode(), repr((list(objectives), list(fidelities), k)).encode())
    out, seconds, hit = memo.get(key, lambda: select(objectives, fidelities, k))
    if hit:
        prof.charge(seconds)
    return out


def timed_loop(base: type[SearchLoop], prof: Profiler, selection: Memo) -> type[SearchLoop]:
    """``base`` with its public steps timed as the driver's phases, survivor selection replayed."""

    class Timed(base):  # type: ignore[valid-type, misc]
        def evaluate(self, *args: Any, **kwargs: Any) -> Any:
            return prof.run("archive", super().evaluate, *args, **kwargs)

        def arrival(self, *args: Any, **kwargs: Any) -> Any:  # the steady state's
            return prof.run("archive", super().arrival, *args, **kwargs)

        def select_parents(self, *args: Any, **kwargs: Any) -> list[int]:
            return prof.run("selection", super().select_parents, *args, **kwargs)

        def select_survivors(self, objectives: Sequence, fidelities: Sequence, k: int) -> list[int]:
            select = super().select_survivors
            replay = functools.partial(replayed_selection, selection, prof, selection_module.__name__, select)
            return prof.run("selection", replay, objectives, fidelities, k)

        def hypervolume(self, objectives: Sequence) -> float:
            return prof.run("selection", super().hypervolume, objectives)

        def front(self) -> list:
            return prof.run("selection", super().front)

    return Timed


class DriverArchive(canon.ClassArchive):
    """``canon.ClassArchive`` that keys the masks it adds with ``key`` (the baseline's driver keys)."""

    def __init__(self, key: Callable[[Mask], str]) -> None:
        super().__init__()
        self.key = key

    def add(self, mask: Mask, payload: Any = None, key: str | None = None) -> tuple[str, bool]:
        return super().add(mask, payload, self.key(mask) if key is None else key)


def timed_baseline(baseline: Baseline, prof: Profiler, selection: Memo, keys: Memo) -> type:
    """The baseline's loop with its steps timed as the driver's phases, its survivor selection and class keys
    replayed. Its source calls its modules' functions directly (``canon.class_key``, ``nsga2``,
    ``pareto.hypervolume``): its module, this benchmark's copy, gets timed copies of those modules."""

    def driver_key(mask: Mask) -> str:  # a key computed on the driver, twice per new class (archive too)
        key, seconds, hit = keys.get(digest(mask.pack()), lambda: canon.class_key(mask))
        if hit:
            prof.charge(seconds)
        return key

    def copy(module: types.ModuleType, **replaced: Any) -> types.SimpleNamespace:
        return types.SimpleNamespace(**{**vars(module), **replaced})

    old = baseline.nsga2
    key = prof.wrap("class_key", driver_key)
    survivors = functools.partial(replayed_selection, selection, prof, old.__name__, old.select_survivors)
    baseline.loop.__dict__.update(
        canon=copy(canon, class_key=key, ClassArchive=lambda: DriverArchive(key)),
        nsga2=copy(
            old,
            select_parents=prof.wrap("selection", old.select_parents),
            select_survivors=prof.wrap("selection", survivors),
        ),
        pareto=copy(pareto, hypervolume=prof.wrap("selection", pareto.hypervolume)),
    )

    class Timed(baseline.loop.SearchLoop):  # type: ignore[name-defined, misc]
        def _evaluate(self, *args: Any, **kwargs: Any) -> Any:  # the old source's step: ``evaluate`` today
            return prof.run("archive", super()._evaluate, *args, **kwargs)

        def front(self) -> list:
            return prof.run("selection", super().front)

    return Timed


class ReplayedProblem(MaskProblem):
    """``MaskProblem`` whose variation (``children``) is timed as phase ``variation`` and replayed from
    ``memo``: the benchmark's mutations read no trained weights (the loop passes None), so the parents' ids
    and the generator's state decide the children."""

    def __init__(self, cfg: SearchConfig, memo: Memo, prof: Profiler) -> None:
        super().__init__(cfg)
        self.memo, self.prof = memo, prof

    def children(
        self, parents: Sequence[tuple[int, Mask]], rng: np.random.Generator, weights: Any = None
    ) -> list[Candidate]:
        return self.prof.run("variation", self.replayed, parents, rng, weights)

    def replayed(
        self, parents: Sequence[tuple[int, Mask]], rng: np.random.Generator, weights: Any
    ) -> list[Candidate]:
        state = repr(rng.bit_generator.state).encode()
        key = digest(state, repr([i for i, _ in parents]).encode())

        def make() -> tuple[list[Candidate], dict]:
            kids = super(ReplayedProblem, self).children(parents, rng, weights)
            return kids, rng.bit_generator.state

        (kids, after), seconds, hit = self.memo.get(key, make)
        if hit:
            rng.bit_generator.state = after
            self.prof.charge(seconds)
        return kids


class TimedStorage:
    """The loop's ``RunStorage``: the store, its writes timed as phase ``store`` (with their waits for the
    disk, ``DriverClock.blocking``)."""

    def __init__(self, store: Store, prof: Profiler) -> None:
        self.record_evaluation = prof.wrap("store", CLOCK.blocking(store.record_evaluation))
        self.record_evaluations = prof.wrap("store", CLOCK.blocking(store.record_evaluations))
        self.commit_generation = prof.wrap("store", CLOCK.blocking(store.commit_generation))
        self.classes, self.individuals = store.classes, store.individuals
        self.last_generation, self.trained_weights = store.last_generation, store.trained_weights


@dataclass
class Outcome:
    driver: str
    workers: int
    latency: str
    children: int
    trained: int
    phases: dict[str, float]
    makespan: float
    busy: float
    hypervolume: float
    individuals: list[tuple] | None = None
    disk: float = 0.0  # seconds the store waited for the disk (part of ``phases["store"]``)
    dropped: float = 0.0  # worker-seconds spare children still running at the run's end had left to train
    starved: float = 0.0  # idle worker-seconds waiting for a job
    tail: float = 0.0  # idle worker-seconds after a worker's last call
    spares: int = 0  # spare children that arrived after the last generation was full
    whole: int = 0  # children whose mask the store holds whole (the others reference their class's)
    checkpoints: float = 0.0  # CPU seconds of the store's checkpointer thread (not the driver's thread)
    wasted: int = 0  # steady state: trainings of a class another worker had trained meanwhile
    kept: float = 0.0  # worker-seconds of the trainings whose results the search kept (part of ``busy``)

    @property
    def utilisation(self) -> float:
        return self.share(self.busy)

    @property
    def training_share(self) -> float:
        """Worker time spent on trainings the search kept: without breeding and keys on the workers, a class
        trained twice at once, and spares that finished but arrived after the last generation was full."""
        return self.share(self.kept)

    def share(self, worker_seconds: float) -> float:
        """A part of the workers' time, as a share of workers × makespan."""
        return worker_seconds / (self.workers * self.makespan) if self.makespan > 0 else 0.0

    def per_child_ms(self, phase: str | None = None) -> float:
        total = sum(self.phases.values()) if phase is None else self.phases.get(phase, 0.0)
        return 1e3 * total / max(1, self.children)


class Bench:
    """One model's seeded workspace and the memo tables its runs share."""

    def __init__(
        self, spec: str, population: int, generations: int, tmp: Path, cache: Path | None = None
    ) -> None:
        self.cfg = SearchConfig(
            name="scale",
            model=spec,
            evaluator="local",
            seeding=SeedingConfig(init_seeds=(0, 1), compressions=(10.0, 30.0, 100.0), iterations=20),
            ga=GAConfig(population=population, generations=generations),
        )
        self.keys, self.children, self.variation, self.selection = Memo(), Memo(), Memo(), Memo()
        self.tmp = tmp
        self.seeded = tmp / f"seeded-{spec.replace(':', '_')}"
        self.problem = MaskProblem(self.cfg)
        if cache is not None:
            self.load(cache)
        t0 = time.perf_counter()
        with Store.open(self.seeded, create=True) as store:
            self.run_id = api.record_run(store, self.cfg, self.problem.shapes)
            prof = Profiler(CLOCK)
            sim = SimCluster(
                1000,
                Latency(1.0),
                prof,
                self.keys,
                self.children,
                self.cfg.fitness.steps,
                self.problem.shapes,
            )
            loop.SearchLoop(self.problem, store, self.run_id, sim).step()
        print(
            f"  generation 0 ({population} seeds) committed in {time.perf_counter() - t0:.0f} s", flush=True
        )
        self.n = 0

    def cache_files(self, cache: Path) -> dict[str, Path]:
        """Where ``--cache`` keeps this model's memo tables: named by the source that computes them."""
        h = hashlib.blake2b(digest_size=8)
        h.update(repr((self.cfg.model, self.cfg.ga.population, self.cfg.seed)).encode())
        for name in PURE_SOURCES:
            h.update((ROOT / "lotterysearch" / name).read_bytes())
        stem = f"{self.cfg.model.replace(':', '_')}-{h.hexdigest()}"
        return {m: cache / f"{stem}-{m}.pkl" for m in ("keys", "children", "variation", "selection")}

    def load(self, cache: Path) -> None:
        shapes = self.problem.shapes
        files = self.cache_files(cache)
        for name in ("keys", "children", "selection"):
            getattr(self, name).load(files[name])
        self.variation.load(
            files["variation"],
            lambda v: ([Candidate(Mask.unpack(p, shapes), o, tuple(ps), op) for p, o, ps, op in v[0]], v[1]),
        )

    def save(self, cache: Path) -> None:
        cache.mkdir(parents=True, exist_ok=True)
        files = self.cache_files(cache)
        for name in ("keys", "children", "selection"):
            getattr(self, name).save(files[name])
        self.variation.save(
            files["variation"],
            lambda v: ([(c.mask.pack(), c.origin, c.parents, c.operator) for c in v[0]], v[1]),
        )

    def workspace(self) -> Path:
        self.n += 1
        ws = self.tmp / f"run-{self.n}"
        shutil.copytree(self.seeded, ws)
        return ws

    def run(
        self,
        driver: str,
        workers: int,
        latency: Latency,
        loop_class: type[SearchLoop] | Baseline,
        generations: int | None = None,
        profile: Path | None = None,
    ) -> Outcome:
        ws = self.workspace()
        cfg = self.cfg
        if generations is not None:
            cfg = dataclasses.replace(cfg, ga=dataclasses.replace(cfg.ga, generations=generations))
        prof = Profiler(CLOCK)
        sim = SimCluster(
            workers, latency, prof, self.keys, self.children, self.cfg.fitness.steps, self.problem.shapes
        )
        prof.clock = sim.driver_clock
        if isinstance(loop_class, Baseline):
            timed = timed_baseline(loop_class, prof, self.selection, self.keys)
        else:
            timed = timed_loop(loop_class, prof, self.selection)
        with Store.open(ws) as store:
            storage = TimedStorage(store, prof)
            # today's loop keys every stored class on restore: the time before the run is not measured
            lp = timed(ReplayedProblem(cfg, self.variation, prof), storage, self.run_id, sim).restore()
            if isinstance(lp, steady_state.SteadyStateLoop):
                # its trainings kept: of a class new to the archive (else another worker's training was)
                lp.evaluation_listeners.append(lambda res, *_: sim.keep(res.key))
            profiler = cProfile.Profile() if profile else None
            try:
                prof.reset()
                disk = CLOCK.io_wait
                sim.start()
                if profiler is not None:
                    profiler.enable()
                prof.run("other", lp.run)
                makespan = sim.finish()
                disk = CLOCK.io_wait - disk
            finally:
                if profiler is not None:
                    profiler.disable()
                    profiler.dump_stats(profile)
            checkpoints = store.checkpoint_seconds
            individuals = store.individuals(self.run_id)
            generations = [
                (g.gen, g.population, g.front, g.hypervolume, g.evaluated, g.skipped)
                for g in store.generations(self.run_id)
            ]
            whole = store.masks_stored_whole(self.run_id, since_generation=1)
        born = [i for i in individuals if i.generation > 0]
        shutil.rmtree(ws, ignore_errors=True)
        same = None
        if driver != "steady_state":
            same = [
                (i.id, i.class_key, i.accuracy, i.density, i.effective_density, i.parents, i.operator)
                for i in born
            ] + generations
        phases = {p: prof.seconds.get(p, 0.0) for p in PHASES}
        trained = sum(i.evaluated for i in born)
        hv = pareto.front_hypervolume(individuals)
        return Outcome(
            driver,
            workers,
            latency.label(),
            len(born),
            trained,
            phases,
            makespan,
            sim.busy,
            hv,
            same,
            disk=disk,
            dropped=sim.dropped,
            starved=sim.starved,
            tail=sim.tail,
            spares=getattr(lp, "dropped", 0),
            wasted=getattr(lp, "wasted", 0),
            kept=sim.kept,
            whole=whole,
            checkpoints=checkpoints,
        )


# ---- main ----------------------------------------------------------------------------------------------
def steady_loop(in_flight: int | None) -> type:
    """``SteadyStateLoop``, with ``in_flight`` children queued or running at once in place of its default."""
    if in_flight is None:
        return steady_state.SteadyStateLoop

    class Deeper(steady_state.SteadyStateLoop):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, in_flight=in_flight, **kwargs)

    return Deeper


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="mlp,lenet")
    parser.add_argument("--workers", default="1,10,100,1000")
    parser.add_argument("--steady-workers", default=None, help="worker counts of the steady-state runs")
    parser.add_argument("--latencies", default="0.1,1")
    parser.add_argument("--kinds", default="fixed,lognormal", help="latency distributions")
    parser.add_argument("--population", type=int, default=1024)
    parser.add_argument("--generations", type=int, default=2, help="generations after the seeded one")
    parser.add_argument(
        "--steady-generations", type=int, default=None, help="generations of the steady-state runs"
    )
    parser.add_argument("--drivers", default="today,generational,steady_state")
    parser.add_argument(
        "--in-flight", type=int, default=None, help="children queued or running at once (steady state)"
    )
    parser.add_argument("--cache", type=Path, default=None, help="keep children and class keys here")
    parser.add_argument("--profile", type=Path, default=None, help="cProfile each steady-state run here")
    args = parser.parse_args()
    workers = [int(w) for w in args.workers.split(",")]
    drivers = args.drivers.split(",")
    steady_workers = [int(w) for w in (args.steady_workers or args.workers).split(",")]
    latencies = [Latency(float(x), k) for x in args.latencies.split(",") for k in args.kinds.split(",")]
    baseline = Baseline.load() if "today" in drivers else None
    print(
        f"scale benchmark: population {args.population}, {args.generations} generations after the seeds"
        f" ({args.steady_generations or args.generations} in the steady-state runs);"
        f" {os.cpu_count()} cores on {socket.gethostname()}; load {' '.join(f'{x:.2f}' for x in os.getloadavg())}",
        flush=True,
    )
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            spec = MODELS.get(name, name)
            print(f"\n== {spec} ==", flush=True)
            bench = Bench(spec, args.population, args.generations, Path(tmp), args.cache)
            rows: list[Outcome] = []
            for lat in latencies:
                for w in workers:
                    t0 = time.perf_counter()
                    if "today" in drivers:
                        rows.append(bench.run("today", w, lat, baseline))
                    if "generational" in drivers:
                        rows.append(bench.run("generational", w, lat, loop.SearchLoop))
                    if "today" in drivers and "generational" in drivers:
                        same = rows[-2].individuals == rows[-1].individuals
                        assert same, "the generational loop must find what today's finds"
                    if w in steady_workers and "steady_state" in drivers:
                        where = args.profile and args.profile / f"{name}-{w}-{lat.kind}-{lat.mean:g}.prof"
                        if where:
                            args.profile.mkdir(parents=True, exist_ok=True)
                        steady = steady_loop(args.in_flight)
                        rows.append(bench.run("steady_state", w, lat, steady, args.steady_generations, where))
                    print(f"  {lat.label()} × {w} workers: {time.perf_counter() - t0:.0f} s", flush=True)
                    if args.cache is not None:
                        bench.save(args.cache)
            report(rows)


def report(rows: list[Outcome]) -> None:
    drivers = list(dict.fromkeys(r.driver for r in rows))
    print(
        "\ndriver time per child by phase (ms: the driver's CPU time plus the store's disk waits, of which"
        " 'disk'; results that arrive together share one commit, so the store's share falls with the load;"
        " 'whole': children whose mask is stored whole, the others reference their class's; 'ckpt thr': CPU"
        " time of the store's checkpointer thread, off the driver's thread)"
    )
    header = (
        f"{'driver':<13}{'latency':<17}{'workers':>8}"
        + "".join(f"{p:>10}" for p in PHASES)
        + f"{'disk':>8}{'total':>9}{'children':>9}{'trained':>8}{'twice':>6}{'whole':>7}{'ckpt thr':>9}"
    )
    print(header + "\n" + "-" * len(header))
    for r in sorted(rows, key=lambda r: drivers.index(r.driver)):
        print(
            f"{r.driver:<13}{r.latency:<17}{r.workers:>8}"
            + "".join(f"{r.per_child_ms(p):>10.3f}" for p in PHASES)
            + f"{1e3 * r.disk / max(1, r.children):>8.3f}{r.per_child_ms():>9.3f}{r.children:>9}{r.trained:>8}"
            + f"{r.wasted:>6}"
            + f"{r.whole:>7}{1e3 * r.checkpoints / max(1, r.children):>9.3f}"
        )
    print(
        "\nworker utilisation (busy worker-time / (workers × makespan); of spares still running at the end"
        " what they trained before it counts as busy), in brackets the share spent on trainings the search"
        " kept (not breeding or keys, a class trained twice at once ('twice' above), or a finished spare that"
        " arrived after the last generation), makespan, final hypervolume"
    )
    ratios = [
        (a, b)
        for a, b in (("generational", "today"), ("steady_state", "today"), ("steady_state", "generational"))
        if a in drivers and b in drivers
    ]
    header = (
        f"{'latency':<17}{'workers':>8}"
        + "".join(f"{d:>38}" for d in drivers)
        + "".join(f"{a[:6] + '/' + b[:6]:>15}" for a, b in ratios)
    )
    print(header + "\n" + "-" * len(header))
    table: dict[tuple[str, int], dict[str, Outcome]] = defaultdict(dict)
    for r in rows:
        table[(r.latency, r.workers)][r.driver] = r
    for (lat, w), cells in table.items():
        line = f"{lat:<17}{w:>8}"
        for d in drivers:
            c = cells.get(d)
            cell = (
                f"{c.utilisation:6.1%} ({c.training_share:5.1%}) {c.makespan:8.1f} s {c.hypervolume:.3f}"
                if c
                else "-"
            )
            line += f"{cell:>38}"
        for a, b in ratios:
            x, y = cells.get(a), cells.get(b)
            line += (
                f"{y.makespan / y.children / (x.makespan / x.children):>14.2f}x" if x and y else f"{'-':>15}"
            )
        print(line)
    print(
        "ratios are speed-ups in time per child (makespan / children committed after the seeds), each against"
        " the driver of the same run"
    )
    print(
        "\nidle worker-time by cause (share of workers × makespan): waiting for a job (the driver had none"
        " ready: its own work, or a generation barrier), and done before the run's end"
    )
    header = f"{'driver':<13}{'latency':<17}{'workers':>8}{'waiting':>9}{'end':>7}"
    print(header + "\n" + "-" * len(header))
    for r in sorted(rows, key=lambda r: drivers.index(r.driver)):
        print(f"{r.driver:<13}{r.latency:<17}{r.workers:>8}{r.share(r.starved):>9.1%}{r.share(r.tail):>7.1%}")


if __name__ == "__main__":
    main()
