"""Continuous Sparsification as a durable run: one trajectory per init seed, rounds committed as IMP's are.

A trajectory has ``rounds + 1`` tickets, as an IMP trajectory: round 0 is the dense network, round r the
hard mask 1[s > 0] of the search's r-th round (``continuous.cs_round``, Algorithm 1 of Savarese et al.
2020). Every ticket is trained from the rewind point (θ₀, or the weights after ``rewind_step`` dense steps)
under the run's protocol (``[training]``), exactly as an IMP round trains its mask (``pruners.imp_round``),
so ``confirm``, ``front`` and the report read a CS run as they read an IMP run.

A round is one job (``cs_round_job``): train round r's ticket, then (r < R) run the search's round r + 1
from the scores round r ended with, reset to min(β_T·s, s₀) (from s₀ for round 1), with β from 1 to β_T.
The driver (``CSDriver``, a ``trajectories.TrajectoryDriver`` as ``runs.imp``'s) commits each round; the
record's ``pruned`` holds the scores the next search round ended with (float32, layers in order:
``continuous.scores_bytes``), from which the next ticket is 1[s > 0]. A killed run resumes each trajectory
after its last committed round from those scores, and ends with the same tickets bit for bit: a round is a
pure function of its inputs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from lotterysearch.core.data import Dataset
from lotterysearch.core.masks import Mask
from lotterysearch.core.models import build_model
from lotterysearch.errors import PruningError
from lotterysearch.pruning import continuous, pruners
from lotterysearch.runs.trajectories import TrajectoryDriver, TrajectoryJob, where_ran
from lotterysearch.settings import CSConfig


# ---- one round ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SearchRound:
    """The settings of one round of the search (λ, β_T, s₀ and its steps)."""

    penalty: float
    beta_final: float
    s_init: float
    steps: int


@dataclass(frozen=True)
class CSRoundJob(TrajectoryJob):
    """A CS round's job: its ticket, the scores the previous search round ended with (None: round 0) and
    the next search round's settings (None: the last round)."""

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
    ticket = pruners.imp_round_from_init(
        model, mask, data, job.training, job.rewind_step, mode=job.mode, seed=job.seed
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
            ticket.rewind_state,
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
    return ticket.result.as_dict(), scores, where_ran(t0)


def search_rounds(cfg: CSConfig) -> list[SearchRound]:
    """The settings of the search's rounds 1..R (``search_rounds(cfg)[r]`` is round r + 1's)."""
    c = cfg.cs
    steps = c.steps or cfg.training.steps - c.rewind_step
    lambdas = list(c.penalty) * c.rounds if len(c.penalty) == 1 else list(c.penalty)
    return [SearchRound(lam, c.beta_final, c.s_init, steps) for lam in lambdas]


# ---- the run ------------------------------------------------------------------------------------------
class CSDriver(TrajectoryDriver):
    """The trajectories of one CS run: a round trains its ticket and stores the scores its successor's
    search round ended with, whose hard mask 1[s > 0] is the next ticket."""

    section, label, stored = "cs", "CS", "scores"
    round_job = staticmethod(cs_round_job)

    def _plan(self) -> list[SearchRound]:
        return search_rounds(self.cfg)

    def _job(self, t: int, r: int, mask: Mask, stored: bytes | None) -> CSRoundJob:
        return CSRoundJob(
            **self._job_fields(t, mask),
            scores=stored,
            search=self.plan[r] if r < self.rounds else None,
            round=r,
        )

    def _ticket(self, stored: bytes, seed: int, r: int) -> Mask:
        mask = continuous.hard_mask(continuous.scores_from_bytes(stored, self.shapes))
        if mask.kept() == 0:
            raise PruningError(
                f"CS run '{self.run_id}': round {r} of seed {seed} pruned every weight; lower cs.penalty (λ)"
                " or raise cs.s_init"
            )
        return mask
