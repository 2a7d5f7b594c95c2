"""Evaluators: where the short training runs of a search happen, behind one interface.

The search hands an evaluator ``(key, mask)`` jobs and reads back one ``EvalResult`` per job as each finishes;
it knows nothing else of where the work runs. Two evaluators implement that:

* ``RayEvaluator``: a pool of Ray actors (``cluster.EvaluatorPool``) on a local Ray or a cluster, the default;
* ``LocalEvaluator``: in this process, no Ray, for notebooks, tests and one-core machines.

Both train with one torch thread per evaluation and the same ``fitness.evaluate_masks``, whose result for a
mask does not depend on which other masks share its call, so they give the same objectives bit for bit.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import torch

from lotterysearch.config import FitnessConfig, RayConfig
from lotterysearch.data import Dataset
from lotterysearch.fitness import Objectives, evaluate_masks
from lotterysearch.masks import Mask

if TYPE_CHECKING:
    from lotterysearch.cluster import EvaluatorPool

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


class Evaluator(Protocol):
    """What the search needs of an evaluator."""

    def evaluate(self, jobs: Sequence[Job], steps: int | None = None) -> Iterator[EvalResult]:
        """One result per job, in order of completion; ``steps`` overrides the fitness budget."""
        ...

    def close(self) -> None:
        """Free what the evaluator holds (actors, threads); a later ``evaluate`` starts afresh."""
        ...


class LocalEvaluator:
    """Fitness in this process, ``chunk`` masks per call (the batched trainer's K by default), torch on
    ``threads`` threads while it trains (1: the Ray evaluators' setting, hence their bits)."""

    def __init__(
        self,
        data: Dataset,
        model_spec: str,
        fitness: FitnessConfig,
        mode: str = "forward",
        *,
        threads: int = 1,
        chunk: int | None = None,
    ) -> None:
        from lotterysearch.batched import mlp_widths, networks_per_batch
        from lotterysearch.models import build_model

        self.data, self.model_spec, self.fitness, self.mode = data, model_spec, fitness, mode
        self.threads = max(1, int(threads))
        widths = mlp_widths(build_model(model_spec, 0))[0]
        self.chunk = chunk or networks_per_batch(widths, fitness.batch_size)

    def evaluate(self, jobs: Sequence[Job], steps: int | None = None) -> Iterator[EvalResult]:
        cfg = self.fitness if steps is None else self.fitness.with_steps(steps)
        jobs = list(jobs)
        for start in range(0, len(jobs), self.chunk):
            batch = jobs[start : start + self.chunk]
            before = torch.get_num_threads()
            torch.set_num_threads(self.threads)
            try:
                t0 = time.perf_counter()
                objectives = evaluate_masks([m for _, m in batch], self.model_spec, self.data, cfg, self.mode)
                share = (time.perf_counter() - t0) / len(batch)
            finally:
                torch.set_num_threads(before)
            for (key, _), o in zip(batch, objectives, strict=True):
                yield EvalResult(key, o, "local", socket.gethostname(), share, 1, os.getpid(), len(batch))

    def close(self) -> None:
        pass


class RayEvaluator:
    """The Ray actor pool, joined lazily: a local Ray, or the cluster at ``address`` (see ``cluster.connect``)."""

    def __init__(
        self,
        data: Dataset,
        model_spec: str,
        fitness: FitnessConfig,
        mode: str = "forward",
        *,
        address: str | None = None,
        ray: RayConfig | None = None,
    ) -> None:
        self.data, self.model_spec, self.fitness, self.mode = data, model_spec, fitness, mode
        self.address, self.ray = address, ray or RayConfig()
        self._pool: EvaluatorPool | None = None

    def connect(self) -> dict[str, Any]:
        """Join the cluster now (a wrong address fails here with one line); returns its summary."""
        from lotterysearch.cluster import connect

        return connect(self.address)

    @property
    def pool(self) -> EvaluatorPool:
        if self._pool is None:
            from lotterysearch.cluster import EvaluatorPool

            self.connect()
            r = self.ray
            self._pool = EvaluatorPool(
                self.data,
                self.model_spec,
                self.fitness,
                mode=self.mode,
                num_evaluators=r.num_evaluators or None,
                cpus_per_eval=r.cpus_per_eval,
                gpus_per_eval=r.gpus_per_eval,
            )
        return self._pool

    def evaluate(self, jobs: Sequence[Job], steps: int | None = None) -> Iterator[EvalResult]:
        jobs = list(jobs)
        if not jobs:
            return iter(())
        shapes = jobs[0][1].shapes
        return self.pool.evaluate([(key, mask.pack()) for key, mask in jobs], shapes, steps)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
