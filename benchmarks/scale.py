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
busy time counting key and variation work as well as training.

Each worker holds two calls of one mask (running and next), as the Ray pool's evaluators do
(``in_flight_per_evaluator = 2``); a freed worker gets its next job when the driver takes its result.
No network latency is simulated.

Drivers, all from the same committed generation 0 (population ``--population``, seeded as a search seeds):

* ``today``: the generational loop of commit ``BASELINE`` (read with ``git show``): keys on the driver
  (twice per new class), DEAP's survivor selection, one store transaction per result;
* ``generational``: ``loop.SearchLoop`` now: keys on the workers, numpy selection, one transaction per group
  of results; the same individuals and front as ``today`` (checked: the run's stored individuals are equal);
* ``steady_state``: ``steady_state.SteadyStateLoop``: no generation barrier, children made on the workers.

Pure, deterministic steps (variation of the generational loops, class keys, survivor selection, a
steady-state child) are computed once per distinct input and their measured time charged again when the
same input recurs in another worker count or latency: the timelines are those of real runs, the machine
time is not spent 32 times.

    python benchmarks/scale.py [--models mlp,lenet] [--workers 1,10,100,1000] [--latencies 0.1,1]
        [--generations 2] [--population 1024] [--steady-workers 1,10,100,1000]
"""

from __future__ import annotations

import argparse
import hashlib
import heapq
import importlib.util
import math
import os
import shutil
import socket
import subprocess
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

from lotterysearch import api, canon, loop, nsga2, pareto, steady_state
from lotterysearch.config import GAConfig, SearchConfig, SeedingConfig
from lotterysearch.evaluators import BreedJob, BreedResult, EvalResult, breed_child
from lotterysearch.fitness import Objectives
from lotterysearch.masks import Mask
from lotterysearch.problem import MaskProblem
from lotterysearch.store import Store

BASELINE = "9161e85"  # the driver before this benchmark's changes
ROOT = Path(__file__).resolve().parents[1]
MODELS = {"mlp": "mlp:40-100-100-10", "lenet": "mlp:784-300-100-10"}
PHASES = ("variation", "class_key", "archive", "selection", "store", "other")


# ---- timing ------------------------------------------------------------------------------------------
class DriverClock:
    """The driver's own time: CPU time of this thread (on a shared machine wall time also counts the time
    spent waiting for a core), plus the wall time the store waits for the disk (a commit's fsync holds the
    serial driver whatever the load)."""

    def __init__(self) -> None:
        self.io_wait = 0.0

    def __call__(self) -> float:
        return time.thread_time() + self.io_wait

    def blocking(self, fn: Callable) -> Callable:
        def waited(*args: Any, **kwargs: Any) -> Any:
            wall, cpu = time.perf_counter(), time.thread_time()
            try:
                return fn(*args, **kwargs)
            finally:
                self.io_wait += max(0.0, (time.perf_counter() - wall) - (time.thread_time() - cpu))

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

    def wrap(self, name: str, fn: Callable) -> Callable:
        def timed(*args: Any, **kwargs: Any) -> Any:
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

        return timed

    def charge(self, seconds: float) -> None:
        """Time a replayed step took when it was computed: the current phase's, and the driver's."""
        self.seconds[self.stack[-1][0] if self.stack else "other"] += seconds
        self.owed += seconds


class Memo:
    """Results of pure steps by input, with the seconds each took when computed."""

    def __init__(self) -> None:
        self.table: dict[Any, tuple[Any, float]] = {}

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


def simulated_objectives(key: str, mask: Mask, steps: int) -> Objectives:
    """Accuracy rising with effective density, spread by the class key: a pure function of the class."""
    eff = mask.effective_density()
    h = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big") / 2**64
    acc = 0.1 + 0.85 * (1 - math.exp(-60 * eff)) * (0.9 + 0.1 * h)
    return Objectives(accuracy=acc, density=mask.density(), effective_density=eff, loss=1 - acc, steps=steps)


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
        self._class_key = canon.class_key  # the real one, whatever the driver's phase timers replace
        self.t = 0.0
        self.free = [0.0] * workers  # when each worker's last assigned job ends
        self.open: deque[int] = deque(w for _ in range(2) for w in range(workers))  # free call slots
        self.busy = 0.0
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
        self.t, self.busy = 0.0, 0.0
        self.free = [0.0] * self.workers
        self._mark = CLOCK()
        self.prof.owed = 0.0

    def finish(self) -> float:
        """The makespan: the driver's virtual time at the end of the run."""
        self._enter()
        self._exit()
        return self.t

    def _run_on(self, w: int, seconds: float) -> float:
        start = max(self.free[w], self.t)
        self.free[w] = start + seconds
        self.busy += seconds
        return self.free[w]

    def _key(self, mask: Mask) -> tuple[str, float]:
        packed = mask.pack()
        key, seconds, _ = self.keys.get(digest(packed), lambda: self._class_key(mask))
        return key, seconds

    # ---- Evaluator --------------------------------------------------------------------------------
    @property
    def capacity(self) -> int:
        return self.workers

    def class_keys(self, masks: Sequence[Mask]) -> list[str]:
        """Keys computed on the workers, round robin; the driver waits for the last."""
        self._enter()
        out, done = [], self.t
        for i, m in enumerate(masks):
            key, seconds = self._key(m)
            out.append(key)
            done = max(done, self._run_on(i % self.workers, seconds))
        self.t = done
        self._exit()
        return out

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
            o = simulated_objectives(key, mask, steps)
            seconds = self.latency.of(key) * steps / self.full_steps
            return seconds, EvalResult(key, o, "sim", "sim", seconds, 1, 0)

        return self._stream(deque(jobs), work)

    def breed(self, jobs: deque[BreedJob], variation: Any) -> Iterator[list[BreedResult]]:
        shapes = self.shapes

        def work(job: BreedJob) -> tuple[float, BreedResult]:
            def make() -> tuple[Mask, str, tuple[int, ...]]:
                child = breed_child([Mask.unpack(p, shapes) for p in job.packed], job.seed, variation)
                return child.mask, child.operator, tuple(job.parents[p] for p in child.parents)

            (mask, op, parents), made_s, _ = self.children.get(
                digest(*job.packed, str(job.seed).encode()), make
            )
            key, key_s = self._key(mask)
            seconds, o = made_s + key_s, None
            if key not in self.known:
                o = simulated_objectives(key, mask, self.full_steps)
                seconds += self.latency.of(key)
            packed = mask.pack()
            return seconds, BreedResult(
                job.id, parents, packed, op, key, mask.density(), o, "sim", "sim", seconds, 1, 0
            )

        return self._stream(jobs, work)

    def _stream(self, queue: deque, work: Callable[[Any], tuple[float, Any]]) -> Iterator[list[Any]]:
        """Jobs of ``queue`` (live: the caller may append between groups) onto free call slots; results in
        order of completion, grouped when several have finished by the time the driver looks."""
        self._enter()
        events: list[tuple[float, int, int, Any]] = []

        def dispatch() -> None:
            while queue and self.open:
                w = self.open.popleft()
                seconds, result = work(queue.popleft())
                self._seq += 1
                heapq.heappush(events, (self._run_on(w, seconds), self._seq, w, result))

        dispatch()
        while events:
            end, _, w, result = heapq.heappop(events)
            self.t = max(self.t, end)
            group = [result]
            self.open.append(w)
            while events and events[0][0] <= self.t:
                _, _, w2, r2 = heapq.heappop(events)
                group.append(r2)
                self.open.append(w2)
            dispatch()
            self._exit()
            yield group
            self._enter()
            dispatch()
        self._exit()


# ---- drivers -------------------------------------------------------------------------------------------
def baseline_modules() -> tuple[type, types.ModuleType]:
    """``SearchLoop`` and ``nsga2`` as of commit ``BASELINE``, loaded from git into fresh modules."""

    def load(path: str, name: str) -> types.ModuleType:
        source = subprocess.run(
            ["git", "-C", str(ROOT), "show", f"{BASELINE}:{path}"], capture_output=True, text=True, check=True
        ).stdout
        spec = importlib.util.spec_from_loader(name, loader=None)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        exec(compile(source, f"{BASELINE}:{path}", "exec"), module.__dict__)
        return module

    old_nsga2 = load("lotterysearch/nsga2.py", "scale_baseline_nsga2")
    old_loop = load("lotterysearch/loop.py", "scale_baseline_loop")
    old_loop.nsga2 = old_nsga2
    return old_loop.SearchLoop, old_nsga2


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

    @property
    def utilisation(self) -> float:
        return self.busy / (self.workers * self.makespan) if self.makespan > 0 else 0.0

    def per_child_ms(self, phase: str | None = None) -> float:
        total = sum(self.phases.values()) if phase is None else self.phases.get(phase, 0.0)
        return 1e3 * total / max(1, self.children)


class Bench:
    """One model's seeded workspace and the memo tables its runs share."""

    def __init__(self, spec: str, population: int, generations: int, tmp: Path) -> None:
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
        t0 = time.perf_counter()
        with Store.open(self.seeded, create=True) as store:
            self.run_id = api._record_run(store, self.cfg, self.problem.shapes)
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

    def workspace(self) -> Path:
        self.n += 1
        ws = self.tmp / f"run-{self.n}"
        shutil.copytree(self.seeded, ws)
        return ws

    def instrument(self, lp: Any, prof: Profiler, module: types.ModuleType, sel: types.ModuleType) -> None:
        """Phase timers (and replay of pure steps) on one loop object and the modules it calls."""
        children = lp.problem.children

        def varied(parents: Sequence[tuple[int, Mask]], rng: np.random.Generator) -> Any:
            state = repr(rng.bit_generator.state).encode()
            key = digest(state, repr([i for i, _ in parents]).encode())

            def make() -> tuple[Any, dict]:
                kids = children(parents, rng)
                return kids, rng.bit_generator.state

            (kids, after), seconds, hit = self.variation.get(key, make)
            if hit:
                rng.bit_generator.state = after
                prof.charge(seconds)
            return kids

        lp.problem = replace_children(lp.problem, prof.wrap("variation", varied))
        lp._evaluate = prof.wrap("archive", lp._evaluate)
        lp.front = prof.wrap("selection", lp.front)
        if hasattr(lp, "_arrival"):
            lp._arrival = prof.wrap("archive", lp._arrival)
        store = lp.storage
        for name in ("record_evaluation", "record_evaluations", "commit_generation"):
            setattr(store, name, prof.wrap("store", CLOCK.blocking(getattr(store, name))))
        survivors = sel.select_survivors

        def selected(objectives: Sequence, fidelities: Sequence, k: int) -> list[int]:
            key = digest(sel.__name__.encode(), repr((list(objectives), list(fidelities), k)).encode())
            out, seconds, hit = self.selection.get(key, lambda: survivors(objectives, fidelities, k))
            if hit:
                prof.charge(seconds)
            return out

        self._patches = [
            (sel, "select_survivors", survivors),
            (sel, "select_parents", sel.select_parents),
            (pareto, "hypervolume", pareto.hypervolume),
            (canon, "class_key", canon.class_key),
        ]
        sel.select_survivors = prof.wrap("selection", selected)
        sel.select_parents = prof.wrap("selection", sel.select_parents)
        if hasattr(sel, "crowded_order"):
            self._patches.append((sel, "crowded_order", sel.crowded_order))
            sel.crowded_order = prof.wrap("selection", sel.crowded_order)
        pareto.hypervolume = prof.wrap("selection", pareto.hypervolume)
        original_key = canon.class_key

        def driver_key(mask: Mask) -> str:  # a key computed on the driver (today's loop)
            key, seconds, hit = self.keys.get(digest(mask.pack()), lambda: original_key(mask))
            if hit:
                prof.charge(seconds)
            return key

        canon.class_key = prof.wrap("class_key", driver_key)
        if hasattr(module, "class_keys_of"):
            self._patches.append((module, "class_keys_of", module.class_keys_of))
            module.class_keys_of = prof.wrap("class_key", module.class_keys_of)

    def uninstrument(self) -> None:
        for obj, name, value in reversed(self._patches):
            setattr(obj, name, value)

    def run(
        self, driver: str, workers: int, latency: Latency, loop_class: type, sel: types.ModuleType
    ) -> Outcome:
        ws = self.workspace()
        prof = Profiler(CLOCK)
        sim = SimCluster(
            workers, latency, prof, self.keys, self.children, self.cfg.fitness.steps, self.problem.shapes
        )
        prof.clock = sim.driver_clock
        real_key = canon.class_key

        def remembered_key(mask: Mask) -> str:
            return self.keys.get(digest(mask.pack()), lambda: real_key(mask))[0]

        with Store.open(ws) as store:
            canon.class_key = remembered_key  # today's loop keys every stored class on restore (not measured)
            try:
                lp = loop_class(MaskProblem(self.cfg), store, self.run_id, sim).restore()
            finally:
                canon.class_key = real_key
            self.instrument(lp, prof, sys.modules[loop_class.__module__], sel)
            try:
                prof.reset()
                sim.start()
                prof.wrap("other", lp.run)()
                makespan = sim.finish()
            finally:
                self.uninstrument()
            individuals = store.individuals(self.run_id)
        born = [i for i in individuals if i.generation > 0]
        shutil.rmtree(ws, ignore_errors=True)
        same = None
        if driver != "steady_state":
            same = [
                (i.id, i.class_key, i.accuracy, i.density, i.effective_density, i.parents, i.operator)
                for i in born
            ]
        phases = {p: prof.seconds.get(p, 0.0) for p in PHASES}
        trained = sum(i.evaluated for i in born)
        hv = pareto.front_hypervolume(individuals)
        return Outcome(
            driver, workers, latency.label(), len(born), trained, phases, makespan, sim.busy, hv, same
        )


def replace_children(problem: MaskProblem, children: Callable) -> MaskProblem:
    """The same problem with ``children`` replaced (an instance attribute shadows the method)."""
    problem.children = children  # type: ignore[method-assign]
    return problem


# ---- main ----------------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="mlp,lenet")
    parser.add_argument("--workers", default="1,10,100,1000")
    parser.add_argument("--steady-workers", default=None, help="worker counts of the steady-state runs")
    parser.add_argument("--latencies", default="0.1,1")
    parser.add_argument("--population", type=int, default=1024)
    parser.add_argument("--generations", type=int, default=2, help="generations after the seeded one")
    parser.add_argument("--drivers", default="today,generational,steady_state")
    args = parser.parse_args()
    workers = [int(w) for w in args.workers.split(",")]
    drivers = args.drivers.split(",")
    steady_workers = [int(w) for w in (args.steady_workers or args.workers).split(",")]
    latencies = [
        Latency(float(x), kind) for x in args.latencies.split(",") for kind in ("fixed", "lognormal")
    ]
    old_loop, old_nsga2 = baseline_modules()
    print(
        f"scale benchmark: population {args.population}, {args.generations} generations after the seeds;"
        f" {os.cpu_count()} cores on {socket.gethostname()}; load {' '.join(f'{x:.2f}' for x in os.getloadavg())}",
        flush=True,
    )
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            spec = MODELS.get(name, name)
            print(f"\n== {spec} ==", flush=True)
            bench = Bench(spec, args.population, args.generations, Path(tmp))
            rows: list[Outcome] = []
            for lat in latencies:
                for w in workers:
                    t0 = time.perf_counter()
                    if "today" in drivers:
                        rows.append(bench.run("today", w, lat, old_loop, old_nsga2))
                    if "generational" in drivers:
                        rows.append(bench.run("generational", w, lat, loop.SearchLoop, nsga2))
                    if "today" in drivers and "generational" in drivers:
                        same = rows[-2].individuals == rows[-1].individuals
                        assert same, "the generational loop must find what today's finds"
                    if w in steady_workers and "steady_state" in drivers:
                        rows.append(bench.run("steady_state", w, lat, steady_state.SteadyStateLoop, nsga2))
                    print(f"  {lat.label()} × {w} workers: {time.perf_counter() - t0:.0f} s", flush=True)
            report(rows)


def report(rows: list[Outcome]) -> None:
    first = {}
    for r in rows:
        first.setdefault(r.driver, r)
    print(
        "\ndriver time per child by phase (ms; the same for every worker count and latency: "
        "the first run's figures)"
    )
    header = (
        f"{'driver':<13}"
        + "".join(f"{p:>11}" for p in PHASES)
        + f"{'total':>10}{'children':>10}{'trained':>9}"
    )
    print(header + "\n" + "-" * len(header))
    for d, r in first.items():
        print(
            f"{d:<13}"
            + "".join(f"{r.per_child_ms(p):>11.3f}" for p in PHASES)
            + f"{r.per_child_ms():>10.3f}{r.children:>10}{r.trained:>9}"
        )
    print("\nworker utilisation (busy worker-time / (workers × makespan)), makespan, final hypervolume")
    header = (
        f"{'latency':<17}{'workers':>8}"
        + "".join(f"{d:>28}" for d in first)
        + f"{'gen./today':>12}{'steady/gen.':>12}"
    )
    print(header + "\n" + "-" * len(header))
    table: dict[tuple[str, int], dict[str, Outcome]] = defaultdict(dict)
    for r in rows:
        table[(r.latency, r.workers)][r.driver] = r
    for (lat, w), cells in table.items():
        line = f"{lat:<17}{w:>8}"
        for d in first:
            c = cells.get(d)
            line += f"{(f'{c.utilisation:6.1%} {c.makespan:8.1f} s {c.hypervolume:.3f}') if c else '-':>28}"
        today, gen, steady = cells.get("today"), cells.get("generational"), cells.get("steady_state")
        line += f"{(today.makespan / gen.makespan) if today and gen else 0:>11.2f}x"
        line += (
            f"{(gen.makespan / steady.makespan) if gen and steady else 0:>11.2f}x" if steady else f"{'-':>12}"
        )
        print(line)
    print("ratios are of makespans (speed-ups); the steady-state makespan is per the same number of children")


if __name__ == "__main__":
    main()
