"""Continuous Sparsification as a durable run: one trajectory per init seed, rounds committed as IMP's are.

A trajectory has ``rounds + 1`` tickets, as an IMP trajectory: round 0 is the dense network, round r the
hard mask 1[s > 0] of the search's r-th round (``continuous.cs_round``, Algorithm 1 of Savarese et al.
2020). Every ticket is trained from the rewind point (θ₀, or the weights after ``rewind_step`` dense steps)
under the run's protocol (``[training]``), exactly as an IMP round trains its mask (``pruners.imp_round``),
so ``confirm``, ``front`` and the report read a CS run as they read an IMP run.

A round is one job (``cs_round_job``): train round r's ticket, then (r < R) run the search's round r + 1
from the scores round r ended with, reset to min(β_T·s, s₀) (from s₀ for round 1), with β from 1 to β_T.
The driver (``CSDriver``) commits each round with ``Store.commit_imp_round``, as ``runs.imp`` does; the
record's ``pruned`` holds the scores the next search round ended with (float32, layers in order:
``continuous.scores_bytes``), from which the next ticket is 1[s > 0]. A killed run resumes each trajectory
after its last committed round from those scores, and ends with the same tickets bit for bit: a round is a
pure function of its inputs.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from lotterysearch.core import canon
from lotterysearch.core.data import Dataset
from lotterysearch.core.masks import Mask
from lotterysearch.core.models import build_model
from lotterysearch.errors import PruningError, StoreError
from lotterysearch.execution import backend
from lotterysearch.execution.jobs import Jobs
from lotterysearch.pruning import continuous, pruners
from lotterysearch.runs.imp import IMPRoundReport, IMPStorage, round_objectives
from lotterysearch.settings import CSConfig, TrainingConfig
from lotterysearch.storage.store import ClassRecord, IMPRoundRecord, Individual
from lotterysearch.training.trainer import TrainResult


# ---- one round ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SearchRound:
    """The settings of one round of the search (λ, β_T, s₀ and its steps)."""

    penalty: float
    beta_final: float
    s_init: float
    steps: int


@dataclass(frozen=True)
class CSRoundJob:
    """What one round needs, all plain values (it travels to a Ray worker): the trajectory's seed, the
    round's ticket (packed), the scores the previous search round ended with (None: round 0) and the next
    search round's settings (None: the last round)."""

    model: str
    seed: int
    mode: str
    training: TrainingConfig
    rewind_step: int
    mask: bytes
    scores: bytes | None
    search: SearchRound | None
    round: int = 0


def cs_round_job(data: Dataset, job: CSRoundJob) -> tuple[dict[str, Any], bytes | None, dict[str, Any]]:
    """Train round r's ticket and run the search's round r + 1: (``TrainResult.as_dict()``, the scores that
    search round ended with or None, where and how long it ran). A pure function of ``job`` and ``data``."""
    t0 = time.perf_counter()
    model = build_model(job.model, job.seed)
    shapes = Mask.ones(model).shapes
    mask = Mask.unpack(job.mask, shapes)
    state = pruners.imp_rewind_state(model, data, job.training, job.rewind_step, mode=job.mode, seed=job.seed)
    ticket = pruners.imp_round(
        model,
        state,
        mask,
        data,
        job.training,
        job.rewind_step,
        mode=job.mode,
        seed=job.seed,
        evaluate_test=True,
    )
    scores = None
    if job.search is not None:
        s = job.search
        start = (
            continuous.init_scores(model, s.s_init)
            if job.scores is None
            else continuous.reset_scores(
                continuous.scores_from_bytes(job.scores, shapes), s.beta_final, s.s_init
            )
        )
        rnd = continuous.cs_round(
            model,
            state,
            start,
            data,
            job.training,
            penalty=s.penalty,
            beta_final=s.beta_final,
            steps=s.steps,
            seed=job.seed + int(job.rewind_step > 0),
            round_index=job.round + 1,
        )
        scores = continuous.scores_bytes(rnd.scores)
    return ticket.result.as_dict(), scores, {"node": platform.node(), "wall_time": time.perf_counter() - t0}


def search_rounds(cfg: CSConfig) -> list[SearchRound]:
    """The settings of the search's rounds 1..R (``search_rounds(cfg)[r]`` is round r + 1's)."""
    c = cfg.cs
    steps = c.steps or cfg.training.steps - c.rewind_step
    lambdas = list(c.penalty) * c.rounds if len(c.penalty) == 1 else list(c.penalty)
    return [SearchRound(lam, c.beta_final, c.s_init, steps) for lam in lambdas]


# ---- the run ------------------------------------------------------------------------------------------
def cs_jobs(cfg: CSConfig, data: Dataset, *, local: bool | None = None, address: str | None = None) -> Jobs:
    """Where the rounds run: in this process (``evaluator = "local"``, or ``local=True``), else as Ray tasks
    on the cluster at ``address``, else ``[ray] address``, else a local Ray (connecting now)."""
    return backend.jobs(
        cs_round_job,
        data,
        local=backend.runs_locally(cfg.evaluator, local),
        address=address or cfg.ray.address or None,
    )


class CSDriver:
    """The trajectories of one CS run: restore what is committed, submit each trajectory's next round,
    commit rounds as they finish and submit their successors, until every trajectory has its last round."""

    def __init__(
        self, cfg: CSConfig, storage: IMPStorage, run_id: str, jobs: Jobs, shapes: dict[str, Sequence[int]]
    ) -> None:
        self.cfg, self.storage, self.run_id, self.jobs = cfg, storage, run_id, jobs
        self.shapes = {n: tuple(s) for n, s in shapes.items()}
        self.seeds = list(cfg.cs.init_seeds)
        self.plan = search_rounds(cfg)
        self.listeners: list[Callable[[IMPRoundReport], None]] = []
        # trajectory index → (next round, its ticket, the scores that chose it: None for round 0)
        self._next: dict[int, tuple[int, Mask, bytes | None]] = {}

    @property
    def rounds(self) -> int:
        return self.cfg.cs.rounds

    def _ticket(self, scores: bytes, seed: int, r: int) -> Mask:
        mask = continuous.hard_mask(continuous.scores_from_bytes(scores, self.shapes))
        if mask.kept() == 0:
            raise PruningError(
                f"CS run '{self.run_id}': round {r} of seed {seed} pruned every weight; lower cs.penalty (λ)"
                " or raise cs.s_init"
            )
        return mask

    def restore(self) -> CSDriver:
        """Each trajectory goes on after its last committed round, from the scores that round stored."""
        committed: dict[int, list[IMPRoundRecord]] = {}
        for rec in self.storage.imp_rounds(self.run_id):
            committed.setdefault(rec.trajectory, []).append(rec)
        unknown = sorted(set(committed) - set(self.seeds))
        if unknown:
            raise StoreError(f"CS run '{self.run_id}' holds trajectories of seeds {unknown} its config lacks")
        self._next = {}
        for t, seed in enumerate(self.seeds):
            recs = committed.get(seed, [])
            if [r.round for r in recs] != list(range(len(recs))):
                raise StoreError(f"CS run '{self.run_id}': the rounds of seed {seed} are not 0, 1, 2, ...")
            if not recs:
                ones = Mask({n: torch.ones(s, dtype=torch.bool) for n, s in self.shapes.items()})
                self._next[t] = (0, ones, None)
            elif len(recs) <= self.rounds:
                scores = recs[-1].pruned
                if scores is None:
                    raise StoreError(
                        f"CS run '{self.run_id}': round {len(recs) - 1} of seed {seed} lacks its scores"
                    )
                self._next[t] = (len(recs), self._ticket(scores, seed, len(recs)), scores)
        return self

    @property
    def done(self) -> bool:
        return not self._next

    def committed_rounds(self) -> int:
        """Rounds committed over all trajectories (of ``len(init_seeds) · (rounds + 1)``)."""
        left = sum(self.rounds + 1 - r for r, _, _ in self._next.values())
        return len(self.seeds) * (self.rounds + 1) - left

    def _submit(self, t: int) -> None:
        r, mask, scores = self._next[t]
        job = CSRoundJob(
            model=self.cfg.model,
            seed=self.seeds[t],
            mode=self.cfg.mode,
            training=self.cfg.training,
            rewind_step=self.cfg.cs.rewind_step,
            mask=mask.pack(),
            scores=scores,
            search=self.plan[r] if r < self.rounds else None,
            round=r,
        )
        self.jobs.submit((t, r), job)

    def run(self) -> None:
        """Run every trajectory to its last round (``restore`` first), committing each round as it ends."""
        t0 = time.monotonic()
        for t in sorted(self._next):
            self._submit(t)
        while self.jobs.pending():
            (t, r), (result_dict, scores, where) = self.jobs.next_done()
            report = self._commit(t, r, result_dict, scores, where, time.monotonic() - t0)
            if r < self.rounds:
                self._next[t] = (r + 1, self._ticket(scores, self.seeds[t], r + 1), scores)
                self._submit(t)
            else:
                del self._next[t]
            for listener in self.listeners:
                listener(report)

    def _commit(
        self, t: int, r: int, result_dict: dict[str, Any], scores: bytes | None, where: dict, elapsed: float
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
            origin=f"cs:seed={seed}:round={r}",
            class_key=key,
            accuracy=accuracy,
            evaluated=True,
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
        record = IMPRoundRecord(self.run_id, seed, r, ind.id, result_dict, scores)
        self.storage.commit_imp_round(record, ind, trained)
        return IMPRoundReport(self.run_id, seed, t, r, self.rounds, ind.id, ind.density, result, elapsed)
