"""A durable run of per-init trajectories, the one driver of IMP (``runs.imp``) and Continuous Sparsification
(``runs.cs``) runs: one trajectory per init seed, ``rounds + 1`` tickets each, every round one job committed
to the store the moment it finishes.

The two kinds differ only in what a round computes and what it stores for its successor: an IMP round
stores the mask it pruned to, a CS round the scores its search ended with. A subclass of
``TrajectoryDriver`` says that (``round_job``, ``_job``, ``_ticket``); restoring, submitting, committing and
resuming live here once. Each finished round is committed with ``Store.commit_imp_round``: the round's ticket
as an individual (its id ``round · len(init_seeds) + trajectory index``, its generation the round) and the
round's numbers, with what the round stored. A killed run resumes each trajectory after its last committed
round, from what that round stored, and ends with the same tickets bit for bit: a round is a pure function
of its inputs.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import torch

from lotterysearch.core import canon
from lotterysearch.core.data import Dataset
from lotterysearch.core.masks import Mask
from lotterysearch.errors import StoreError
from lotterysearch.execution import backend
from lotterysearch.execution.jobs import Jobs
from lotterysearch.settings import CSConfig, IMPConfig, TrainingConfig
from lotterysearch.storage.store import ClassRecord, IMPRoundRecord, Individual
from lotterysearch.training.trainer import TrainResult


@dataclass(frozen=True)
class TrajectoryJob:
    """What every round needs, all plain values (it travels to a Ray worker): the trajectory's seed (init
    weights and batches), the protocol and its rewind point, and the round's ticket (packed). A kind's job
    adds what its round computes beyond training the ticket."""

    model: str
    seed: int
    mode: str
    training: TrainingConfig
    rewind_step: int
    mask: bytes


def where_ran(started: float) -> dict[str, Any]:
    """What a round job reports beside its numbers: the node it ran on and its seconds since ``started``
    (``time.perf_counter``), which the driver stores with the round for the ledger."""
    return {"node": platform.node(), "wall_time": time.perf_counter() - started}


def round_objectives(result: TrainResult) -> tuple[float, float]:
    """A ticket's (validation accuracy, loss): at the early-stopping iteration when the protocol evaluates
    along the way (``eval_every > 0``), else after the last step."""
    es = result.early_stop
    return (es.val_accuracy, es.val_loss) if es is not None else (result.val_accuracy, result.val_loss)


@dataclass(frozen=True)
class IMPRoundReport:
    """One committed round, for the progress display and the Python API."""

    run_id: str
    seed: int
    trajectory: int
    round: int
    rounds: int
    individual_id: int
    density: float
    result: TrainResult
    elapsed: float

    def line(self) -> str:
        r, es = self.result, self.result.early_stop
        at = f"early stop {es.step:>6}" if es is not None else f"last step  {r.steps:>6}"
        val, test = (
            (es.val_accuracy, es.test_accuracy) if es is not None else (r.val_accuracy, r.test_accuracy)
        )
        test_text = "-" if test is None else f"{test:.4f}"
        return (
            f"seed {self.seed:>3}  round {self.round:>2}/{self.rounds}  density {self.density:.4f}  {at}  "
            f"val acc {val:.4f}  test acc {test_text}  {self.elapsed:7.1f} s"
        )


class IMPStorage(Protocol):
    """What the driver writes and reads back on resume (``store.Store`` is the SQLite one)."""

    def commit_imp_round(
        self, record: IMPRoundRecord, individual: Individual, trained: ClassRecord
    ) -> None: ...

    def imp_rounds(self, run_id: str) -> list[IMPRoundRecord]: ...


class TrajectoryDriver:
    """The trajectories of one run: restore what is committed, submit each trajectory's next round, commit
    rounds as they finish and submit their successors, until every trajectory has its last round.

    A subclass names its config section (``section``: ``init_seeds``, ``rounds``, ``rewind_step``), the
    round's job function (``round_job``: ``(data, job) → (TrainResult.as_dict(), stored bytes or None,
    where)``), the plan of its rounds (``_plan``), the job of a round (``_job``) and the ticket a stored round
    leads to (``_ticket``)."""

    section: ClassVar[str]  # the config's table of the trajectories: "imp" or "cs"
    label: ClassVar[str]  # the kind in messages: "IMP" or "CS"
    stored: ClassVar[str]  # what a round stores for its successor, in messages
    round_job: ClassVar[Callable[[Dataset, Any], tuple[dict[str, Any], bytes | None, dict[str, Any]]]]

    def __init__(
        self,
        cfg: IMPConfig | CSConfig,
        storage: IMPStorage,
        run_id: str,
        jobs: Jobs,
        shapes: dict[str, Sequence[int]],
    ) -> None:
        self.cfg, self.storage, self.run_id, self.jobs = cfg, storage, run_id, jobs
        self.shapes = {n: tuple(s) for n, s in shapes.items()}
        self.seeds = list(self.part.init_seeds)
        self.plan = self._plan()
        self.listeners: list[Callable[[IMPRoundReport], None]] = []
        # trajectory index → (next round, its ticket, what the round before stored: None for round 0)
        self._next: dict[int, tuple[int, Mask, bytes | None]] = {}

    @classmethod
    def open_jobs(
        cls,
        cfg: IMPConfig | CSConfig,
        data: Dataset,
        *,
        local: bool | None = None,
        address: str | None = None,
    ) -> Jobs:
        """Where the rounds run: in this process (``evaluator = "local"``, or ``local=True``), else as Ray
        tasks on the cluster at ``address``, else ``[ray] address``, else a local Ray (connecting now)."""
        return backend.jobs(
            cls.round_job,
            data,
            local=backend.runs_locally(cfg.evaluator, local),
            address=address or cfg.ray.address or None,
        )

    @property
    def part(self) -> Any:
        """The config's table of the trajectories (``[imp]`` or ``[cs]``)."""
        return getattr(self.cfg, self.section)

    @property
    def rounds(self) -> int:
        return self.part.rounds

    def _plan(self) -> list[Any]:
        """What each round computes for its successor, known before any training (``plan[r]``: round r's,
        for rounds 0..R-1: IMP's kept counts, CS's search settings)."""
        raise NotImplementedError

    def _job(self, t: int, r: int, mask: Mask, stored: bytes | None) -> TrajectoryJob:
        """The job of trajectory ``t``'s round ``r`` on ``mask``, after a round that stored ``stored``."""
        raise NotImplementedError

    def _job_fields(self, t: int, mask: Mask) -> dict[str, Any]:
        """The fields of a ``TrajectoryJob`` for trajectory ``t``'s round on ``mask``."""
        return {
            "model": self.cfg.model,
            "seed": self.seeds[t],
            "mode": self.cfg.mode,
            "training": self.cfg.training,
            "rewind_step": self.part.rewind_step,
            "mask": mask.pack(),
        }

    def _ticket(self, stored: bytes, seed: int, r: int) -> Mask:
        """Round ``r``'s ticket from what round ``r - 1`` stored."""
        raise NotImplementedError

    def _steps(self, result: TrainResult, r: int) -> int | None:
        """The steps an individual of round ``r`` records (None: none recorded)."""
        return None

    def restore(self) -> TrajectoryDriver:
        """Each trajectory goes on after its last committed round, from what that round stored."""
        committed: dict[int, list[IMPRoundRecord]] = {}
        for rec in self.storage.imp_rounds(self.run_id):
            committed.setdefault(rec.trajectory, []).append(rec)
        unknown = sorted(set(committed) - set(self.seeds))
        if unknown:
            raise StoreError(
                f"{self.label} run '{self.run_id}' holds trajectories of seeds {unknown} its config lacks"
            )
        self._next = {}
        for t, seed in enumerate(self.seeds):
            recs = committed.get(seed, [])
            if [r.round for r in recs] != list(range(len(recs))):
                raise StoreError(
                    f"{self.label} run '{self.run_id}': the rounds of seed {seed} are not 0, 1, 2, ..."
                )
            if not recs:
                ones = Mask({n: torch.ones(s, dtype=torch.bool) for n, s in self.shapes.items()})
                self._next[t] = (0, ones, None)
            elif len(recs) <= self.rounds:
                stored = recs[-1].pruned
                if stored is None:
                    raise StoreError(
                        f"{self.label} run '{self.run_id}': round {len(recs) - 1} of seed {seed} lacks its"
                        f" {self.stored}"
                    )
                self._next[t] = (len(recs), self._ticket(stored, seed, len(recs)), stored)
        return self

    @property
    def done(self) -> bool:
        return not self._next

    def committed_rounds(self) -> int:
        """Rounds committed over all trajectories (of ``len(init_seeds) · (rounds + 1)``)."""
        left = sum(self.rounds + 1 - r for r, _, _ in self._next.values())
        return len(self.seeds) * (self.rounds + 1) - left

    def _submit(self, t: int) -> None:
        r, mask, stored = self._next[t]
        self.jobs.submit((t, r), self._job(t, r, mask, stored))

    def run(self) -> None:
        """Run every trajectory to its last round (``restore`` first), committing each round as it ends."""
        t0 = time.monotonic()
        for t in sorted(self._next):
            self._submit(t)
        while self.jobs.pending():
            (t, r), (result_dict, stored, where) = self.jobs.next_done()
            report = self._commit(t, r, result_dict, stored, where, time.monotonic() - t0)
            if r < self.rounds:
                self._next[t] = (r + 1, self._ticket(stored, self.seeds[t], r + 1), stored)
                self._submit(t)
            else:
                del self._next[t]
            for listener in self.listeners:
                listener(report)

    def _commit(
        self, t: int, r: int, result_dict: dict[str, Any], stored: bytes | None, where: dict, elapsed: float
    ) -> IMPRoundReport:
        mask = self._next[t][1]
        n, seed = len(self.seeds), self.seeds[t]
        result = TrainResult.from_dict(result_dict)
        accuracy, loss = round_objectives(result)
        key = canon.class_key(mask)
        ind = Individual.of(
            mask,
            run_id=self.run_id,
            id=r * n + t,
            generation=r,
            parents=((r - 1) * n + t,) if r else (),
            operator="",
            origin=f"{self.section}:seed={seed}:round={r}",
            class_key=key,
            accuracy=accuracy,
            evaluated=True,
            steps=self._steps(result, r),
        )
        trained = ClassRecord(
            run_id=self.run_id,
            key=key,
            algo_version=canon.VERSION,
            individual_id=ind.id,
            representative=ind.packed,
            accuracy=accuracy,
            loss=loss,
            effective_density=ind.effective_density,
            steps=result.steps,
            node=str(where.get("node", "")),
            wall_time=float(where.get("wall_time", 0.0)),
        )
        record = IMPRoundRecord(
            self.run_id, seed, r, ind.id, result_dict, stored, wall_time=float(where.get("wall_time", 0.0))
        )
        self.storage.commit_imp_round(record, ind, trained)
        return IMPRoundReport(self.run_id, seed, t, r, self.rounds, ind.id, ind.density, result, elapsed)
