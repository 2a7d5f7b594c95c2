"""IMP as a durable run: Frankle & Carbin's iterative magnitude pruning with rewinding, one trajectory per
init seed, every round committed to the store the moment it finishes.

A trajectory trains ``rounds + 1`` masks: the dense one (round 0), then each pruned one. A round is one job
(``train_round_job``): build the network from the trajectory's seed, go to the rewind point (the init, or the
weights after ``rewind_step`` dense steps, recomputed from the seed), train the round's mask with the
protocol (``[training]``, test accuracy read at every evaluation), and prune by |θ| to the next round's
kept counts (``pruners.imp_plan`` and ``pruners.imp_round``: the schedule and the round of ``pruners.imp``). The
driver (``IMPDriver``, a ``trajectories.TrajectoryDriver``) runs the trajectories side by side through
``backend.jobs`` (Ray tasks or this process) and commits each finished round with the mask the round pruned
to, from which a killed run resumes the trajectory and ends with the same tickets bit for bit.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from lotterysearch.core.data import Dataset, load_dataset
from lotterysearch.core.masks import Mask
from lotterysearch.core.models import build_model
from lotterysearch.errors import ConfigError, PruningError
from lotterysearch.pruning import pruners
from lotterysearch.runs.ledger import round_steps
from lotterysearch.runs.trajectories import IMPRoundReport, TrajectoryDriver, TrajectoryJob, where_ran
from lotterysearch.settings import CSConfig, IMPConfig
from lotterysearch.training.family import family_of
from lotterysearch.training.fitness import batch_seed
from lotterysearch.training.trainer import TrainResult

# The names of an IMP run, with the round report that every trajectory run shares.
__all__ = [
    "IMPDriver",
    "IMPRoundReport",
    "RoundJob",
    "imp_data",
    "round_plan",
    "round_steps",
    "train_round_job",
]


# ---- one round ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RoundJob(TrajectoryJob):
    """An IMP round's job: its ticket, the counts to prune it to (None: the last round) and the order of its
    minibatches (``IMPSettings.batch_order``)."""

    kept: dict[str, int] | int | None
    batch_order: int = 0


def train_round_job(data: Dataset, job: RoundJob) -> tuple[dict[str, Any], bytes | None, dict[str, Any]]:
    """Train one round and prune it: (``TrainResult.as_dict()``, the next round's mask packed or None,
    where and how long it ran). A pure function of ``job`` and ``data``: a rerun gives the same bits."""
    t0 = time.perf_counter()
    model = build_model(job.model, job.seed)
    mask = Mask.unpack(job.mask, Mask.ones(model).shapes)
    rnd = pruners.imp_round_from_init(
        model,
        mask,
        data,
        job.training,
        job.rewind_step,
        kept=job.kept,
        mode=job.mode,
        seed=batch_seed(job.seed, job.batch_order),
    )
    pruned = None if rnd.pruned is None else rnd.pruned.pack()
    return rnd.result.as_dict(), pruned, where_ran(t0)


# ---- the run ------------------------------------------------------------------------------------------
def imp_data(cfg: IMPConfig | CSConfig) -> Dataset:
    """The run's dataset (validation split seeded by ``cfg.seed``), checked against the model's inputs."""
    data = load_dataset(cfg.dataset, cfg.seed, data_dir=cfg.data_dir or None)
    data.check_model(cfg.model, build_model(cfg.model, 0), label="field 'model':")
    return data


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


class IMPDriver(TrajectoryDriver):
    """The trajectories of one IMP run: a round trains its mask and stores the mask it prunes to by |θ|
    (the next round's), to the kept counts of ``round_plan``."""

    section, label, stored = "imp", "IMP", "pruned mask"
    round_job = staticmethod(train_round_job)

    def _plan(self) -> list[dict[str, int] | int]:
        return round_plan(self.cfg)

    def _job(self, t: int, r: int, mask: Mask, stored: bytes | None) -> RoundJob:
        kept = self.plan[r] if r < self.rounds else None
        return RoundJob(**self._job_fields(t, mask), kept=kept, batch_order=self.part.batch_order)

    def _ticket(self, stored: bytes, seed: int, r: int) -> Mask:
        return Mask.unpack(stored, self.shapes)

    def _steps(self, result: TrainResult, r: int) -> int | None:
        return round_steps(result, r, self.part.rewind_step)
