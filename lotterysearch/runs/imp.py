"""IMP as a durable run: Frankle & Carbin's iterative magnitude pruning with rewinding, one trajectory per
init seed, every round committed to the store the moment it finishes.

A trajectory trains ``rounds + 1`` masks: the dense one (round 0), then each pruned one. A round is one job
(``train_round_job``): build the network from the trajectory's seed, go to the rewind point (the init, or the
weights after ``rewind_step`` dense steps, recomputed from the seed), train the round's mask with the
protocol (``[training]``, test accuracy read at every evaluation), and prune by |θ| to the next round's
kept counts (``pruners.imp_plan`` and ``pruners.imp_round``: the schedule and the round of ``pruners.imp``). The
driver (``IMPDriver``) runs the trajectories side by side through ``backend.jobs`` (Ray tasks or this process), and
commits each finished round with ``Store.commit_imp_round``: the round's mask as an individual (its id
``round · len(init_seeds) + trajectory index``, its generation the round) and the round's numbers, with the
mask the round pruned to. A killed run resumes each trajectory after its last committed round, from that
stored mask, and ends with the same tickets bit for bit: a round is a pure function of its inputs.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from lotterysearch.core import canon
from lotterysearch.core.data import Dataset, load_dataset
from lotterysearch.core.masks import Mask
from lotterysearch.core.models import build_model, input_width
from lotterysearch.errors import ConfigError, PruningError, StoreError
from lotterysearch.execution import backend
from lotterysearch.execution.jobs import Jobs
from lotterysearch.pruning import pruners
from lotterysearch.settings import IMPConfig, TrainingConfig
from lotterysearch.storage.store import ClassRecord, IMPRoundRecord, Individual
from lotterysearch.training.family import family_of
from lotterysearch.training.trainer import TrainResult


# ---- one round ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RoundJob:
    """What one round needs, all plain values (it travels to a Ray worker): the trajectory's seed (init
    weights and batches), the round's mask (packed) and the counts to prune it to (None: the last round)."""

    model: str
    seed: int
    mode: str
    training: TrainingConfig
    rewind_step: int
    mask: bytes
    kept: dict[str, int] | int | None


def train_round_job(data: Dataset, job: RoundJob) -> tuple[dict[str, Any], bytes | None, dict[str, Any]]:
    """Train one round and prune it: (``TrainResult.as_dict()``, the next round's mask packed or None,
    where and how long it ran). A pure function of ``job`` and ``data``: a rerun gives the same bits."""
    t0 = time.perf_counter()
    model = build_model(job.model, job.seed)
    mask = Mask.unpack(job.mask, Mask.ones(model).shapes)
    rnd = pruners.imp_round_from_init(
        model, mask, data, job.training, job.rewind_step, kept=job.kept, mode=job.mode, seed=job.seed
    )
    pruned = None if rnd.pruned is None else rnd.pruned.pack()
    return rnd.result.as_dict(), pruned, {"node": platform.node(), "wall_time": time.perf_counter() - t0}


def round_objectives(result: TrainResult) -> tuple[float, float]:
    """A ticket's (validation accuracy, loss): at the early-stopping iteration when the protocol evaluates
    along the way (``eval_every > 0``), else after the last step."""
    es = result.early_stop
    return (es.val_accuracy, es.val_loss) if es is not None else (result.val_accuracy, result.val_loss)


def round_steps(result: TrainResult | dict[str, Any], round: int, rewind_step: int) -> int:
    """Training steps of a round for the compute ledger (``runs.ledger``): those from its rewind point, and
    for round 0 also the ``rewind_step`` dense steps that reach it (once per trajectory: every later round
    starts from the same point)."""
    steps = result.steps if isinstance(result, TrainResult) else int(result["steps"])
    return steps + (rewind_step if round == 0 else 0)


# ---- the run ------------------------------------------------------------------------------------------
def imp_data(cfg: IMPConfig) -> Dataset:
    """The run's dataset (validation split seeded by ``cfg.seed``), checked against the model's inputs."""
    data = load_dataset(cfg.dataset, cfg.seed, data_dir=cfg.data_dir or None)
    data.check_input_width(cfg.model, input_width(build_model(cfg.model, 0)), label="field 'model':")
    return data


def imp_jobs(cfg: IMPConfig, data: Dataset, *, local: bool | None = None, address: str | None = None) -> Jobs:
    """Where the rounds run: in this process (``evaluator = "local"``, or ``local=True``), else as Ray tasks
    on the cluster at ``address``, else ``[ray] address``, else a local Ray (connecting now)."""
    return backend.jobs(
        train_round_job,
        data,
        local=backend.runs_locally(cfg.evaluator, local),
        address=address or cfg.ray.address or None,
    )


def round_plan(cfg: IMPConfig) -> list[dict[str, int] | int]:
    """Kept counts of rounds 1..R (``plan[r]`` is what round r prunes to), known before any training; a
    schedule that would empty a layer, or a convolution rate for a model without convolutions, is a one-line
    ``ConfigError``."""
    i = cfg.imp
    if i.conv_rate and not family_of(cfg.model).convolutional:
        raise ConfigError(f"field 'imp.conv_rate' applies to convolutions; model '{cfg.model}' has none")
    try:
        return pruners.imp_plan(
            build_model(cfg.model, 0),
            rounds=i.rounds,
            rate=i.rate,
            output_rate=i.output_rate,
            scope=i.scope,
            conv_rate=i.conv_rate or None,
        )
    except PruningError as e:
        raise ConfigError(f"[imp] {e}") from None


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


class IMPDriver:
    """The trajectories of one IMP run: restore what is committed, submit each trajectory's next round,
    commit rounds as they finish and submit their successors, until every trajectory has its last round."""

    def __init__(
        self, cfg: IMPConfig, storage: IMPStorage, run_id: str, jobs: Jobs, shapes: dict[str, Sequence[int]]
    ) -> None:
        self.cfg, self.storage, self.run_id, self.jobs = cfg, storage, run_id, jobs
        self.shapes = {n: tuple(s) for n, s in shapes.items()}
        self.seeds = list(cfg.imp.init_seeds)
        self.plan = round_plan(cfg)
        self.listeners: list[Callable[[IMPRoundReport], None]] = []
        self._next: dict[int, tuple[int, Mask]] = {}  # trajectory index → (next round, its mask)

    @property
    def rounds(self) -> int:
        return self.cfg.imp.rounds

    def restore(self) -> IMPDriver:
        """Each trajectory goes on after its last committed round, from the mask that round pruned to."""
        committed: dict[int, list[IMPRoundRecord]] = {}
        for rec in self.storage.imp_rounds(self.run_id):
            committed.setdefault(rec.trajectory, []).append(rec)
        unknown = sorted(set(committed) - set(self.seeds))
        if unknown:
            raise StoreError(
                f"IMP run '{self.run_id}' holds trajectories of seeds {unknown} its config lacks"
            )
        self._next = {}
        for t, seed in enumerate(self.seeds):
            recs = committed.get(seed, [])
            if [r.round for r in recs] != list(range(len(recs))):
                raise StoreError(f"IMP run '{self.run_id}': the rounds of seed {seed} are not 0, 1, 2, ...")
            if not recs:
                self._next[t] = (
                    0,
                    Mask({n: torch.ones(s, dtype=torch.bool) for n, s in self.shapes.items()}),
                )
            elif len(recs) <= self.rounds:
                self._next[t] = (len(recs), Mask.unpack(recs[-1].pruned, self.shapes))
        return self

    @property
    def done(self) -> bool:
        return not self._next

    def committed_rounds(self) -> int:
        """Rounds committed over all trajectories (of ``len(init_seeds) · (rounds + 1)``)."""
        left = sum(self.rounds + 1 - r for r, _ in self._next.values())
        return len(self.seeds) * (self.rounds + 1) - left

    def _submit(self, t: int) -> None:
        r, mask = self._next[t]
        i = self.cfg.imp
        job = RoundJob(
            model=self.cfg.model,
            seed=self.seeds[t],
            mode=self.cfg.mode,
            training=self.cfg.training,
            rewind_step=i.rewind_step,
            mask=mask.pack(),
            kept=self.plan[r] if r < self.rounds else None,
        )
        self.jobs.submit((t, r), job)

    def run(self) -> None:
        """Run every trajectory to its last round (``restore`` first), committing each round as it ends."""
        t0 = time.monotonic()
        for t in sorted(self._next):
            self._submit(t)
        while self.jobs.pending():
            (t, r), (result_dict, pruned, where) = self.jobs.next_done()
            report = self._commit(t, r, result_dict, pruned, where, time.monotonic() - t0)
            if r < self.rounds:
                self._next[t] = (r + 1, Mask.unpack(pruned, self.shapes))
                self._submit(t)
            else:
                del self._next[t]
            for listener in self.listeners:
                listener(report)

    def _commit(
        self, t: int, r: int, result_dict: dict[str, Any], pruned: bytes | None, where: dict, elapsed: float
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
            origin=f"imp:seed={seed}:round={r}",
            class_key=key,
            accuracy=accuracy,
            evaluated=True,
            steps=round_steps(result, r, self.cfg.imp.rewind_step),
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
            self.run_id, seed, r, ind.id, result_dict, pruned, wall_time=float(where.get("wall_time", 0.0))
        )
        self.storage.commit_imp_round(record, ind, trained)
        return IMPRoundReport(self.run_id, seed, t, r, self.rounds, ind.id, ind.density, result, elapsed)
