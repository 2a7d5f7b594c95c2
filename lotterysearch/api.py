"""The Python API of a whole search: start one, open a stored one, run it, read its front and history.

In Optuna's vocabulary a ``Run`` is the study and an ``Individual`` the trial::

    import lotterysearch as ls

    with ls.search("experiments/configs/demo.toml", workspace="ws", local=True) as run:
        for ind in run.front():
            print(ind.id, ind.accuracy, ind.density, ind.mask.layer_densities())
    run = ls.open_run("ws", "demo-001")  # later, or from another process
    run.resume()                         # a run that was interrupted goes on to its last generation

A run lives in the workspace's store (``store.Store``); its generation loop (``loop.SearchLoop``) is made
only when the run is driven, with the evaluator the config names (Ray, or in-process with ``local=True``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from lotterysearch import pareto
from lotterysearch.config import SearchConfig, config_hash, load_config, parse_config, to_dict, to_toml
from lotterysearch.errors import StoreError
from lotterysearch.evaluators import EvalResult, RayEvaluator
from lotterysearch.loop import GenerationReport, SearchLoop
from lotterysearch.problem import MaskProblem
from lotterysearch.store import GenerationRecord, Individual, RunRecord, Store

Progress = Callable[[GenerationReport], None]


class Run:
    """One run of a workspace: read it at any time, drive it (``optimize``, ``resume``) from one process.

    Reads go to the store, so a ``Run`` opened while another process drives the run sees each generation as
    it is committed. Use it as a context manager, or ``close()`` it, to release the store.
    """

    def __init__(self, store: Store, run_id: str, *, local: bool | None = None, address: str | None = None):
        self.store, self.id = store, run_id
        self.local, self.address = local, address
        self.config: SearchConfig = parse_config(store.run(run_id).config_toml, f"run {run_id}")
        self.problem = MaskProblem(self.config)
        self._search: SearchLoop | None = None

    # ---- reading ------------------------------------------------------------------------------
    @property
    def workspace(self) -> Path:
        return self.store.paths.root

    @property
    def record(self) -> RunRecord:
        """The stored run: status, config text, versions, generations committed."""
        return self.store.run(self.id)

    @property
    def status(self) -> str:
        """``running``, ``finished``, ``interrupted`` or ``failed``."""
        return self.record.status

    def individuals(self) -> list[Individual]:
        """Every evaluated individual, by id (``ind.mask`` unpacks its mask)."""
        return self.store.individuals(self.id)

    def front(self) -> list[Individual]:
        """The Pareto front over every individual of the run, by density (``pareto.front``)."""
        return pareto.front(self.individuals())

    def history(self) -> list[GenerationRecord]:
        """One record per committed generation: population, front ids, hypervolume, counts, elapsed time."""
        return self.store.generations(self.id)

    # ---- driving ------------------------------------------------------------------------------
    def _loop(self) -> SearchLoop:
        if self._search is None:
            evaluator = self.problem.evaluator(local=self.local, address=self.address)
            self._search = SearchLoop(self.problem, self.store, self.id, evaluator).restore()
        return self._search

    def optimize(
        self,
        generations: int | None = None,
        *,
        progress: Progress | None = None,
        on_evaluation: Callable[[EvalResult, int, int], None] | None = None,
    ) -> Run:
        """Run ``generations`` more generations (default: all the config asks for) in this process.

        Holds the run's driver lock throughout (``Store.driving``): a second driver of the same run fails
        before writing anything. The run ends ``finished`` when its last generation is committed, or
        ``interrupted`` (Ctrl-C, SIGTERM) or ``failed``, and can be resumed from its last generation.
        ``progress`` is called after each committed generation; ``on_evaluation`` as each training returns
        with (result, trained so far, to train in this rung).
        """
        loop = self._loop()
        with self.store.driving(self.id):
            self.store.set_status(self.id, "running")
            listeners = [(loop.listeners, progress), (loop.evaluation_listeners, on_evaluation)]
            for where, fn in listeners:
                if fn is not None:
                    where.append(fn)
            try:
                loop.run(generations)
            except KeyboardInterrupt:
                self.store.set_status(self.id, "interrupted")
                raise
            except BaseException:
                self.store.set_status(self.id, "failed")
                raise
            finally:
                loop.evaluator.close()
                for where, fn in listeners:
                    if fn is not None:
                        where.remove(fn)
            self.store.set_status(self.id, "finished" if loop.done else "interrupted")
        return self

    def resume(self, *, progress: Progress | None = None) -> Run:
        """Continue a run that did not finish, after its last committed generation, to its end."""
        check_resumable(self.store, self.id)
        return self.optimize(progress=progress)

    @property
    def generation(self) -> int:
        """The last committed generation (-1 before the seeded population is)."""
        last = self.store.last_generation(self.id)
        return -1 if last is None else last.gen

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Run:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Run({self.id!r}, workspace={str(self.workspace)!r})"


def create_run(
    config: SearchConfig | str | Path,
    workspace: str | Path | None = None,
    *,
    local: bool | None = None,
    address: str | None = None,
) -> Run:
    """A new run of ``config`` (a ``SearchConfig`` or a TOML file) in ``workspace`` (default: the config's),
    not yet started. What can fail is checked before anything is written: the data, the model's input width
    and, for Ray, the cluster address."""
    cfg = config if isinstance(config, SearchConfig) else load_config(config)
    problem = MaskProblem(cfg)
    problem.data  # noqa: B018 - loads and checks the data now
    evaluator = problem.evaluator(local=local, address=address)
    if isinstance(evaluator, RayEvaluator):
        evaluator.connect()
    store = Store.open(workspace or cfg.workspace, create=True)
    run_id = store.create_run(
        cfg.name,
        to_toml(cfg),
        json.dumps(to_dict(cfg)),
        config_hash(cfg),
        cfg.seed,
        list(pareto.REF_POINT),
        {n: list(s) for n, s in problem.shapes.items()},
    )
    run = Run(store, run_id, local=local, address=address)
    run.problem = problem  # the data is loaded already
    return run


def search(
    config: SearchConfig | str | Path,
    workspace: str | Path | None = None,
    *,
    local: bool | None = None,
    address: str | None = None,
    progress: Progress | None = None,
) -> Run:
    """Create a run of ``config`` and run it to the end; returns the finished ``Run``."""
    return create_run(config, workspace, local=local, address=address).optimize(progress=progress)


def open_run(
    workspace: str | Path, run_id: str, *, local: bool | None = None, address: str | None = None
) -> Run:
    """A stored run of ``workspace``; an unknown run, or a store that is not ours, is a one-line error."""
    store = Store.open(workspace, create=False)
    try:
        store.run(run_id)
        return Run(store, run_id, local=local, address=address)
    except BaseException:
        store.close()
        raise


def check_resumable(store: Store, run_id: str) -> None:
    if store.run(run_id).status == "finished":
        raise StoreError(f"run '{run_id}' has already finished; nothing to resume")
