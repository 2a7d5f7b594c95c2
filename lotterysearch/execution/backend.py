"""The one place that picks where training runs: in this process, or on Ray (a local Ray or a cluster).

A run's settings say ``evaluator = "ray"`` (the default) or ``"local"``; a caller may override that with
``local``. Searches get an ``Evaluator`` (short fitness runs), IMP runs and confirmations get ``Jobs`` (long
independent trainings); both backends give the same numbers bit for bit, since each training runs on one torch
thread wherever it runs.

Picking costs no torch: each function imports the backend it picks inside itself (the local ones import
torch, the Ray ones Ray too), so what reads a run's settings through this module (confirmation's summaries,
which the light CLI commands show) starts without either.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from lotterysearch.settings import FitnessConfig, RayConfig

if TYPE_CHECKING:
    from lotterysearch.core.data import Dataset
    from lotterysearch.execution.evaluators import Evaluator
    from lotterysearch.execution.jobs import Jobs


def runs_locally(evaluator: str, local: bool | None = None) -> bool:
    """Whether to train in this process: ``local`` when the caller says, else the settings' ``evaluator``."""
    return local if local is not None else evaluator == "local"


def evaluator(
    data: Dataset,
    model_spec: str,
    fitness: FitnessConfig,
    mode: str,
    *,
    local: bool,
    address: str | None = None,
    ray: RayConfig | None = None,
) -> Evaluator:
    """A search's evaluator: ``LocalEvaluator``, or a pool of Ray actors joined lazily at ``address``."""
    if local:
        from lotterysearch.execution.evaluators import LocalEvaluator  # torch: see the module docstring

        return LocalEvaluator(data, model_spec, fitness, mode)
    from lotterysearch.execution.cluster import RayEvaluator  # Ray is imported only where it is used

    return RayEvaluator(data, model_spec, fitness, mode, address=address, ray=ray)


def jobs(fn: Callable[..., Any], data: Dataset, *, local: bool, address: str | None = None) -> Jobs:
    """Long jobs ``fn(data, *args)``: run here when the driver asks for the next, or as Ray tasks."""
    if local:
        from lotterysearch.execution.jobs import LocalJobs  # torch: see the module docstring

        return LocalJobs(fn, data)
    from lotterysearch.execution.cluster import RayJobs  # Ray is imported only where it is used

    return RayJobs(fn, data, address=address)
