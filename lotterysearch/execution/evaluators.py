"""Evaluators: where the short training runs of a search happen, behind one interface.

The search hands an evaluator ``(key, mask)`` jobs and reads back one ``EvalResult`` per job as each finishes
(``evaluate``, or ``evaluate_ready``: the results grouped as they arrive together, so the driver commits each
group in one transaction); it knows nothing else of where the work runs. Work that is a pure function of a
mask runs where the evaluations run, off the driver: class keys (``class_keys``) and, for the steady-state
search, whole children (``breed``: variation from a child's own seed, its class key, a check against the
classes the driver has published, and training only on a miss). Two evaluators implement that:

* ``cluster.RayEvaluator``: a pool of Ray actors (``cluster.EvaluatorPool``) on a local Ray or a cluster,
  the default;
* ``LocalEvaluator``: in this process, no Ray, for notebooks, tests and one-core machines.

``backend.evaluator`` picks one. Both train with one torch thread per evaluation and the same ``fitness.evaluate_masks``, whose result for a
mask does not depend on which other masks share its call, so they give the same objectives bit for bit.
"""

from __future__ import annotations

import os
import socket
import time
from collections import deque
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch

from lotterysearch.core.data import Dataset
from lotterysearch.core.masks import Mask
from lotterysearch.core.models import build_model
from lotterysearch.errors import ConfigError
from lotterysearch.evolution import operators
from lotterysearch.settings import FitnessConfig
from lotterysearch.training.fitness import Objectives, evaluate_masks, fitness_key, key_order, masks_per_call

Job = tuple[str, Mask]  # the caller's key (a class key) and the mask to train


@dataclass(frozen=True)
class EvalResult:
    """One finished evaluation: the caller's key, the objectives and where and how it ran."""

    key: str
    objectives: Objectives
    node: str  # Ray node id ("local" for the in-process evaluator)
    hostname: str
    wall_time: float  # seconds of the successful attempt, measured where it ran
    attempts: int  # 1 unless a worker died under this evaluation
    pid: int
    batch: int = 1  # masks trained in the same call, this one included


@dataclass(frozen=True)
class BreedJob:
    """One child for the steady-state search to make where it is scored: its id, its parents' ids and
    packed masks, and the seed of its own random numbers (so the child does not depend on where it is made)."""

    id: int
    parents: tuple[int, ...]
    packed: tuple[bytes, ...]
    seed: int


@dataclass(frozen=True)
class BreedResult:
    """A child made by ``breed``: its packed mask, the operators that made it, its class key, and its
    objectives, or ``None`` when its class was one the driver had published as known (not trained)."""

    id: int
    parents: tuple[int, ...]
    packed: bytes
    operator: str
    class_key: str
    density: float
    objectives: Objectives | None
    node: str
    hostname: str
    wall_time: float
    attempts: int
    pid: int


class Evaluator(Protocol):
    """What the search needs of an evaluator."""

    def connect(self) -> dict[str, Any]:
        """Join where the evaluations run now, so that a wrong address fails before a run is written."""
        ...

    def evaluate(self, jobs: Sequence[Job], steps: int | None = None) -> Iterator[EvalResult]:
        """One result per job, in order of completion; ``steps`` overrides the fitness budget."""
        ...

    def evaluate_ready(
        self, jobs: Sequence[Job], steps: int | None = None, order: int = 0
    ) -> Iterator[list[EvalResult]]:
        """``evaluate``'s results in groups: each group is what arrived together (one call's masks).
        ``order`` trains under another order of minibatches (``FitnessConfig.batch_order``)."""
        ...

    def class_keys(self, masks: Sequence[Mask]) -> list[str]:
        """``fitness.fitness_key`` of each mask (the class key in the topology mode), computed where the
        evaluations run."""
        ...

    def breed(
        self, jobs: deque[BreedJob], variation: operators.VariationConfig
    ) -> Iterator[list[BreedResult]]:
        """Make, key and (unless published as known) train each child of ``jobs``, a live queue: jobs the
        caller appends while iterating are taken too; the iteration ends when it is empty and nothing runs."""
        ...

    def publish(self, keys: Iterable[str]) -> None:
        """Classes the driver knows: ``breed`` does not train a child of one of them."""
        ...

    def close(self) -> None:
        """Free what the evaluator holds (actors, threads); a later ``evaluate`` starts afresh."""
        ...


def breed_child(parents: Sequence[Mask], seed: int, variation: operators.VariationConfig) -> operators.Child:
    """The child of one steady-state job: the first offspring ``operators.vary`` makes of ``parents`` with a
    generator seeded by the job's own ``seed``."""
    return operators.vary(list(parents), np.random.default_rng(seed), variation)[0]


def breed_batch(
    jobs: Sequence[BreedJob],
    shapes: dict[str, tuple[int, ...]],
    variation: operators.VariationConfig,
    known: Collection[str],
    train: Callable[[list[Mask]], list[Objectives]],
    mode: str = "topology",
) -> list[dict[str, Any]]:
    """``breed`` of a batch where it runs: each child made, keyed, looked up in ``known``, and the misses
    trained together by ``train``. One plain dict per job (``objectives`` None for a hit)."""
    made = []
    for job in jobs:
        child = breed_child([Mask.unpack(p, shapes) for p in job.packed], job.seed, variation)
        made.append((job, child, fitness_key(child.mask, mode)))
    misses = [i for i, (_, _, key) in enumerate(made) if key not in known]
    start = time.perf_counter()
    trained = dict(zip(misses, train([made[i][1].mask for i in misses]), strict=True))
    share = (time.perf_counter() - start) / max(1, len(misses))
    out = []
    for i, (job, child, key) in enumerate(made):
        o = trained.get(i)
        out.append(
            {
                "id": job.id,
                "parents": tuple(job.parents[p] for p in child.parents),
                "packed": child.mask.pack(),
                "operator": child.operator,
                "class_key": key,
                "density": child.mask.density(),
                "objectives": None if o is None else o.as_dict(),
                "wall_time": share if o is not None else 0.0,
            }
        )
    return out


def breed_result(out: dict[str, Any], node: str, hostname: str, attempts: int, pid: int) -> BreedResult:
    o = out["objectives"]
    return BreedResult(
        out["id"],
        tuple(out["parents"]),
        out["packed"],
        out["operator"],
        out["class_key"],
        float(out["density"]),
        None if o is None else Objectives(**o),
        node,
        hostname,
        float(out["wall_time"]),
        attempts,
        pid,
    )


def class_keys_of(evaluator: object, masks: Sequence[Mask], mode: str = "topology") -> list[str]:
    """``evaluator.class_keys(masks)``, or computed here (``fitness_key`` in ``mode``) for an evaluator
    without it."""
    if not masks:
        return []
    keys = getattr(evaluator, "class_keys", None)
    return list(keys(masks)) if keys is not None else [fitness_key(m, mode) for m in masks]


def ready_groups(
    evaluator: object, jobs: Sequence[Job], steps: int | None, order: int = 0
) -> Iterator[list[EvalResult]]:
    """``evaluator.evaluate_ready``, or ``evaluate``'s results one per group for an evaluator without it.
    ``order`` (another order of minibatches) is passed only where it is not 0, so an evaluator written
    before it existed still serves every other call."""
    grouped = getattr(evaluator, "evaluate_ready", None)
    if order:
        if grouped is None:
            raise ConfigError(f"{type(evaluator).__name__} cannot train under another batch order")
        return grouped(jobs, steps, order=order)
    if grouped is not None:
        return grouped(jobs, steps)
    return ([r] for r in evaluator.evaluate(jobs, steps))  # type: ignore[attr-defined]


@dataclass(eq=False, repr=False)
class BaseEvaluator:
    """What every evaluator holds: the data, the model, the fitness settings and the masking mode each mask is
    trained with; and ``evaluate``, ``evaluate_ready``'s groups one result at a time."""

    data: Dataset
    model_spec: str
    fitness: FitnessConfig
    mode: str = "forward"

    def evaluate(self, jobs: Sequence[Job], steps: int | None = None) -> Iterator[EvalResult]:
        for group in self.evaluate_ready(jobs, steps):
            yield from group

    def evaluate_ready(
        self, jobs: Sequence[Job], steps: int | None = None, order: int = 0
    ) -> Iterator[list[EvalResult]]:
        raise NotImplementedError


@dataclass(eq=False, repr=False)
class LocalEvaluator(BaseEvaluator):
    """Fitness in this process, ``chunk`` masks per call (the batched trainer's K by default), torch on
    ``threads`` threads while it trains (1: the Ray evaluators' setting, hence their bits)."""

    threads: int = field(default=1, kw_only=True)
    chunk: int | None = field(default=None, kw_only=True)  # None: ``masks_per_call``

    def __post_init__(self) -> None:
        self.threads = max(1, int(self.threads))
        self.chunk = self.chunk or masks_per_call(self.model_spec, self.fitness.batch_size)
        self.shapes = Mask.ones(build_model(self.model_spec, 0)).shapes
        self.known: set[str] = set()  # classes published by the driver (``breed`` skips them)

    def connect(self) -> dict[str, Any]:
        return {}

    def _train(
        self, masks: list[Mask], cfg: FitnessConfig, orders: list[int | None] | None = None
    ) -> tuple[list[Objectives], float]:
        """Objectives of ``masks`` (on their own batch ``orders``, where given) under ``threads`` torch
        threads, and each one's share of the time."""
        before = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            t0 = time.perf_counter()
            objectives = evaluate_masks(masks, self.model_spec, self.data, cfg, self.mode, orders)
            return objectives, (time.perf_counter() - t0) / max(1, len(masks))
        finally:
            torch.set_num_threads(before)

    def evaluate_ready(
        self, jobs: Sequence[Job], steps: int | None = None, order: int = 0
    ) -> Iterator[list[EvalResult]]:
        cfg = self.fitness if steps is None else self.fitness.with_steps(steps)
        cfg = cfg.with_batch_order(order) if order else cfg
        jobs = list(jobs)
        host, pid = socket.gethostname(), os.getpid()
        for start in range(0, len(jobs), self.chunk):
            batch = jobs[start : start + self.chunk]
            objectives, share = self._train([m for _, m in batch], cfg, [key_order(k) for k, _ in batch])
            yield [
                EvalResult(key, o, "local", host, share, 1, pid, len(batch))
                for (key, _), o in zip(batch, objectives, strict=True)
            ]

    @property
    def capacity(self) -> int:
        """Jobs worth keeping queued: one call's chunk."""
        return self.chunk

    def class_keys(self, masks: Sequence[Mask]) -> list[str]:
        return [fitness_key(m, self.fitness.mode) for m in masks]

    def publish(self, keys: Iterable[str]) -> None:
        self.known.update(keys)

    def breed(
        self, jobs: deque[BreedJob], variation: operators.VariationConfig
    ) -> Iterator[list[BreedResult]]:
        host, pid = socket.gethostname(), os.getpid()
        while jobs:
            batch = [jobs.popleft() for _ in range(min(self.chunk, len(jobs)))]
            shapes = self.shapes
            outs = breed_batch(
                batch,
                shapes,
                variation,
                self.known,
                lambda ms: self._train(ms, self.fitness)[0],
                self.fitness.mode,
            )
            yield [breed_result(out, "local", host, 1, pid) for out in outs]

    def close(self) -> None:
        pass
