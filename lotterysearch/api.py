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
An IMP run (``ls.imp(config)``, a config with ``kind = "imp"``) is a ``Run`` too: ``run.kind`` is
``RunKind.IMP`` (equal to ``"imp"``), its tickets are its individuals and ``run.imp_rounds()`` its rounds;
``runs.imp.IMPDriver`` drives it. A Continuous Sparsification run (``ls.cs(config)``, ``kind = "cs"``) is read
the same way, its rounds those of ``runs.cs.CSDriver``.

Your own network and data go where a spec and a built-in dataset go: ``model=`` a factory ``seed ->
nn.Module`` (or its import path, ``core.modules``) and ``data=`` tensors ``(x, y)``, a torch ``Dataset`` or
three splits (``data.as_dataset``)::

    run = ls.search(ls.SearchConfig(...), "ws", model=make_net, data=(x, y), local=True)
    run = ls.open_run("ws", run.id, data=(x, y))  # resumes only on the same data and network

The run stores the factory's import path and fingerprints of the network (parameter names and shapes) and
of the data; opening it with other data, or with a factory that now builds another network, is one line.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

from torch import nn

from lotterysearch import settings
from lotterysearch.core import modules
from lotterysearch.core.data import TENSORS, Dataset, as_dataset, given_data
from lotterysearch.core.masks import Mask
from lotterysearch.core.models import ResNetSpec, build_model, is_factory, parameter_count, parse_spec
from lotterysearch.errors import ConfigError, LotterySearchError, ModelError, StoreError
from lotterysearch.evolution import diagnostics, pareto
from lotterysearch.evolution.diagnostics import Ancestor, GenerationDiagnostics
from lotterysearch.evolution.loop import GenerationReport, SearchLoop
from lotterysearch.evolution.problem import MaskProblem
from lotterysearch.evolution.single_lineage import SingleLineageLoop
from lotterysearch.evolution.steady_state import SteadyStateLoop
from lotterysearch.execution.evaluators import EvalResult
from lotterysearch.execution.jobs import Jobs
from lotterysearch.readers import export
from lotterysearch.readers.export import BenchRow, Exported
from lotterysearch.runs import confirmation
from lotterysearch.runs.confirmation import Confirmation, Confirmed
from lotterysearch.runs.cs import CSDriver
from lotterysearch.runs.imp import IMPDriver, IMPRoundReport, imp_data, round_plan
from lotterysearch.runs.ledger import Ledger, RunCompute, run_compute, run_ledger, stored_confirmation_ledger
from lotterysearch.settings import (
    ROUND_KINDS,
    CSConfig,
    IMPConfig,
    RunKind,
    SearchConfig,
    TrainingConfig,
    check_field,
    config_hash,
    parse_config,
    parse_cs_config,
    parse_imp_config,
    parse_run_config,
    to_dict,
    to_toml,
)
from lotterysearch.storage.store import GenerationRecord, IMPRoundRecord, Individual, RunRecord, Store

Progress = Callable[[GenerationReport], None]
Factory = Callable[[int], nn.Module]
IMPProgress = Callable[[IMPRoundReport], None]
RunConfig = TypeVar("RunConfig", SearchConfig, IMPConfig, CSConfig)


def check_run(cfg: RunConfig) -> RunConfig:
    """What a run's settings need of its model, checked before anything is written: the settings module
    checks fields and names alone; here the model spec must build within the size limit, every seeding
    compression must leave a weight, an IMP schedule must empty no layer, and the config must read back
    from its TOML."""
    # a config made in Python skips the loader; one that does not read back from the TOML its run stores
    # could never be opened again, so nothing is recorded for it
    parse = {IMPConfig: parse_imp_config, CSConfig: parse_cs_config}.get(type(cfg), parse_config)
    again = parse(to_toml(cfg), f"the config of '{cfg.name}'")
    if to_dict(again) != to_dict(cfg):
        raise ConfigError(f"the config of '{cfg.name}' does not read back from its TOML as it was given")
    try:
        build_model(cfg.model, 0)  # checks the parameter count (``settings.LIMITS``) before allocating any
    except LotterySearchError as e:
        raise ConfigError(f"field 'model': {e}") from None
    if isinstance(cfg, IMPConfig):
        round_plan(cfg)
    elif isinstance(cfg, SearchConfig):
        check_chain_operators(cfg)
        weights = parameter_count(cfg.model, biases=False)
        check_field(
            "seeding.compressions",
            max(cfg.seeding.compressions) <= weights,
            f"at most the model's {weights} weights (ρ = {weights} keeps one)",
            list(cfg.seeding.compressions),
        )
    return cfg


def with_own_parts(
    cfg: RunConfig, model: Factory | str | None, data: object
) -> tuple[RunConfig, Dataset | None]:
    """``cfg`` with the user's network (its factory's import path, ``modules.reference_of``) and data (as
    dataset ``tensors``, ``data.as_dataset``) in place of its spec and dataset, and the fingerprints a resume
    is checked against; with the data as a ``Dataset``."""
    changes: dict[str, object] = {}
    if model is not None:
        changes["model"] = modules.reference_of(model)
    ds = None
    if data is not None:
        ds = as_dataset(data, cfg.seed)
        changes.update(dataset=TENSORS, data_fingerprint=ds.fingerprint())
    cfg = dataclasses.replace(cfg, **changes)
    if is_factory(cfg.model) and not cfg.model_fingerprint:
        cfg = dataclasses.replace(cfg, model_fingerprint=modules.model_fingerprint(build_model(cfg.model, 0)))
    return cfg, ds


def check_own_parts(cfg: RunConfig, run_id: str, model: Factory | str | None, data: object) -> Dataset | None:
    """A stored run opened with the user's ``model`` and ``data`` (either may be None): the same factory,
    a network of the stored fingerprint, data of the stored fingerprint; else a one-line error naming both."""
    if model is not None and modules.reference_of(model) != cfg.model:
        raise ModelError(
            f"run '{run_id}' was made with model {cfg.model}, not {modules.reference_of(model)}: open it"
            " without model=, or start a new run"
        )
    if cfg.model_fingerprint:
        now = modules.model_fingerprint(build_model(cfg.model, 0))
        if now != cfg.model_fingerprint:
            raise ModelError(
                f"run '{run_id}' was made with a network of fingerprint {cfg.model_fingerprint}, model"
                f" {cfg.model} now builds {now} (other parameter names or shapes): restore the factory, or start"
                " a new run"
            )
    if data is None:
        return None
    return given_data(data, cfg.seed, cfg.data_fingerprint, f"run '{run_id}'")


def check_chain_operators(cfg: SearchConfig) -> None:
    """A network that is not a chain has no interchangeable units: aligning neurons and the neuron-level
    operators do not apply to it (one line naming the field)."""
    if not is_factory(cfg.model) and not isinstance(parse_spec(cfg.model), ResNetSpec):
        return  # the built-in MLPs and convnets are chains: nothing to build
    if Mask.ones(build_model(cfg.model, 0)).is_chain():
        return
    what = f"for model {cfg.model}, which is not a chain of layers (no interchangeable units)"
    if cfg.ga.align:
        raise ConfigError(f"field 'ga.align' must be false {what}")
    for path, ops in (("ga.crossovers", cfg.ga.crossovers), ("ga.mutations", cfg.ga.mutations)):
        neuron = [op for op in ops if op.startswith("neuron")]
        if neuron:
            raise ConfigError(f"field '{path}' must not name {neuron[0]} {what}")


def load_config(path: str | Path) -> SearchConfig:
    """A search's settings from a TOML file, checked through (``settings.load_config``, then ``check_run``)."""
    return check_run(settings.load_config(path))


def load_imp_config(path: str | Path) -> IMPConfig:
    """An IMP run's settings from a TOML file with ``kind = "imp"``, checked through."""
    return check_run(settings.load_imp_config(path))


def load_cs_config(path: str | Path) -> CSConfig:
    """A Continuous Sparsification run's settings from a TOML file with ``kind = "cs"``, checked through."""
    return check_run(settings.load_cs_config(path))


class Run:
    """One run of a workspace: read it at any time, drive it (``optimize``, ``resume``) from one process.

    Reads go to the store, so a ``Run`` opened while another process drives the run sees each generation as
    it is committed. Use it as a context manager, or ``close()`` it, to release the store.
    """

    def __init__(
        self,
        store: Store,
        run_id: str,
        *,
        local: bool | None = None,
        address: str | None = None,
        model: Factory | str | None = None,
        data: object = None,
    ):
        self.store, self.id = store, run_id
        self.local, self.address = local, address
        record = store.run(run_id)
        self.kind: RunKind = record.kind  # equal to "search", "imp" or "cs"
        self.config: SearchConfig | IMPConfig | CSConfig
        self.problem: MaskProblem | None = None
        if self.kind in ROUND_KINDS:  # rounds of tickets (``runs.imp``, ``runs.cs``), not generations
            self.config = parse_run_config(record.config_toml, self.kind, f"run {run_id}")
        else:
            self.config = parse_config(record.config_toml, f"run {run_id}")
        own_data = check_own_parts(self.config, run_id, model, data)
        if self.kind not in ROUND_KINDS:  # a search's problem; rounds of tickets have none
            self.problem = MaskProblem(self.config, own_data)
        self._search: SearchLoop | None = None
        self._own_data = own_data  # data given from Python (dataset "tensors"), None for a built-in dataset
        self._imp_data = own_data  # an IMP run's dataset, loaded when first driven unless given
        self._imp_jobs: Jobs | None = None  # made (and its Ray address checked) by ``create_imp_run``

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
        """The run's Pareto front, by density (``pareto.run_front``: a search's as committed with its last
        generation, the front over everything measured up to it; an IMP run's over its tickets)."""
        return pareto.run_front(self.store, self.id)

    def history(self) -> list[GenerationRecord]:
        """One record per committed generation: population, front ids, hypervolume, counts, elapsed time."""
        return self.store.generations(self.id)

    def diagnostics(self) -> list[GenerationDiagnostics]:
        """Per committed generation: distinct lineages, surviving founders and the mean pairwise Jaccard
        overlap of the population's masks (``diagnostics.run_diagnostics``)."""
        return diagnostics.run_diagnostics(self.store, self.id)

    def ancestry(self, individual_id: int) -> list[Ancestor]:
        """``individual_id`` and its ancestors back to generation 0, with the operators that made each."""
        return diagnostics.run_ancestries(self.store, self.id, [individual_id])[individual_id]

    def imp_rounds(self) -> list[IMPRoundRecord]:
        """An IMP run's committed rounds, by trajectory (init seed) then round: each round's individual id,
        its training numbers (``TrainResult.as_dict``) and the mask it pruned to. Empty for a search."""
        return self.store.imp_rounds(self.id) if self.kind in ROUND_KINDS else []

    def confirmations(self, protocol: str | TrainingConfig | None = None) -> list[Confirmation]:
        """Every stored retraining of the run's masks under a full protocol (``ls.confirm``), or those under
        ``protocol`` (its key, or the ``TrainingConfig``), by individual, init, seed."""
        key = confirmation.protocol_key(self.store, self.id, protocol)
        return [Confirmation.of(r) for r in self.store.confirmations(self.id, key)]

    def confirmed(self, protocol: str | TrainingConfig | None = None) -> dict[int, Confirmed]:
        """Per individual: test accuracy and iteration at early stop from its own init and the reinit
        control, under ``protocol`` (default: the latest one used), by id."""
        key = confirmation.protocol_key(self.store, self.id, protocol)
        return confirmation.stored_confirmed(self.store, self.id, key)

    @property
    def ledger(self) -> Ledger:
        """What the run's trainings cost (``runs.ledger``): total training steps, critical path in steps,
        FLOPs on kept weights, training seconds; its confirmations apart (``confirmation_ledger``)."""
        return run_ledger(self.store, self.id)

    def compute(self) -> RunCompute:
        """The run's ledger with, per individual id, the steps along its lineage (``lineage_steps``) and the
        run's steps up to its generation (``run_steps``)."""
        return run_compute(self.store, self.id)

    def confirmation_ledger(self, protocol: str | TrainingConfig | None = None) -> Ledger:
        """What the run's confirmations cost (under ``protocol``, default all), to add to ``ledger``."""
        key = confirmation.protocol_key(self.store, self.id, protocol)
        return stored_confirmation_ledger(self.store, self.id, key)

    def export(
        self,
        individual_id: int,
        out: str | Path,
        format: str | None = None,
        *,
        weights: str = "trained",
        protocol: TrainingConfig | str | Path | None = None,
    ) -> Exported:
        """Write an individual as a compacted model or its mask (``export.export``: formats ``compact``,
        ``sparse``, ``program``, ``onnx``, ``mask``; ``weights`` ``trained`` or ``init``)."""
        return export.export(
            self.store,
            self.id,
            individual_id,
            out,
            format,
            weights=weights,
            protocol=protocol,
            data=self._own_data,
        )

    def bench(
        self, individual_id: int, batches: Sequence[int] = (1, 256), *, rounds: int = 7, threads: int = 1
    ) -> list[BenchRow]:
        """Latency and memory of an individual's exported forms against its dense masked network
        (``export.bench``, θ₀ weights: latency does not depend on their values)."""
        t = export.ticket(self.store, self.id, individual_id, "init", data=self._own_data)
        return export.bench(t.model, t.mask, batches, rounds=rounds, threads=threads)

    # ---- driving ------------------------------------------------------------------------------
    def _loop(self) -> SearchLoop:
        if self._search is None:
            evaluator = self.problem.evaluator(local=self.local, address=self.address)
            loop = SteadyStateLoop if self.problem.cfg.ga.mode == "steady_state" else SearchLoop
            if self.problem.cfg.ga.control == "single_lineage":
                loop = SingleLineageLoop
            self._search = loop(self.problem, self.store, self.id, evaluator).restore()
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

        An IMP run (``kind is RunKind.IMP``) runs every trajectory to its last round instead (``generations``
        does not apply); ``progress`` is then called with an ``IMPRoundReport`` per committed round.
        """
        if self.kind in ROUND_KINDS:
            if generations is not None:
                what = "an IMP run" if self.kind is RunKind.IMP else "a CS run"
                raise ConfigError(f"run '{self.id}' is {what}: it has rounds, not generations")
            return self._optimize_imp(progress)
        loop = self._loop()
        listeners = [(loop.listeners, progress), (loop.evaluation_listeners, on_evaluation)]

        def body() -> bool:
            for where, fn in listeners:
                if fn is not None:
                    where.append(fn)
            try:
                loop.run(generations)
            finally:
                loop.evaluator.close()
                for where, fn in listeners:
                    if fn is not None:
                        where.remove(fn)
            return loop.done

        self._drive(body)
        return self

    def _drive(self, body: Callable[[], bool]) -> None:
        """Run ``body`` (True when the run is complete) under the run's driver lock, keeping its status:
        ``running`` meanwhile, then ``finished`` or ``interrupted`` (also on Ctrl-C), or ``failed``."""
        with self.store.driving(self.id):
            self.store.set_status(self.id, "running")
            try:
                done = body()
            except KeyboardInterrupt:
                self.store.set_status(self.id, "interrupted")
                raise
            except BaseException:
                self.store.set_status(self.id, "failed")
                raise
            self.store.set_status(self.id, "finished" if done else "interrupted")

    def _optimize_imp(self, progress: IMPProgress | None) -> Run:
        """Drive an IMP run to its last round under the driver lock, with the statuses of ``optimize``."""
        if self._imp_data is None:
            self._imp_data = imp_data(self.config)
        make_driver = CSDriver if self.kind is RunKind.CS else IMPDriver
        jobs = self._imp_jobs or make_driver.open_jobs(
            self.config, self._imp_data, local=self.local, address=self.address
        )
        self._imp_jobs = None
        driver = make_driver(self.config, self.store, self.id, jobs, self.record.shapes)
        if progress is not None:
            driver.listeners.append(progress)

        def body() -> bool:
            driver.restore().run()
            return driver.done

        try:
            self._drive(body)
        finally:
            jobs.close()
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
    config: SearchConfig | str | Path | None = None,
    workspace: str | Path | None = None,
    *,
    local: bool | None = None,
    address: str | None = None,
    model: Factory | str | None = None,
    data: object = None,
) -> Run:
    """A new run of ``config`` (a ``SearchConfig`` or a TOML file; None: the defaults) in ``workspace``
    (default: the config's), not yet started, on ``model`` (a factory ``seed -> nn.Module``) and ``data``
    (tensors, see ``data.as_dataset``) where given. What can fail is checked before anything is written: the
    data, the model's input width and, for Ray, the cluster address."""
    cfg = config if config is not None else SearchConfig()
    cfg = settings.load_config(cfg) if not isinstance(cfg, SearchConfig) else cfg
    cfg, own_data = with_own_parts(cfg, model, data)
    cfg = check_run(cfg)
    problem = MaskProblem(cfg, own_data)
    if own_data is not None:
        problem.data.check_model(cfg.model, build_model(cfg.model, 0), label="model")
    problem.data  # noqa: B018 - loads and checks the data now
    evaluator = problem.evaluator(local=local, address=address)
    evaluator.connect()
    store = Store.open(workspace or cfg.workspace, create=True)
    run = Run(store, record_run(store, cfg, problem.shapes), local=local, address=address)
    run.problem, run._own_data = problem, own_data  # the data is loaded already
    return run


def stored_steps(run: Run) -> int:
    """Training steps of a run's stored trainings: every class at its stored fidelity and every elite
    re-evaluation. Successive halving's lower rungs are not stored, so a halving run spent more."""
    classes = run.store.classes(run.id).values()
    return sum(c.steps for c in classes) + sum(r.steps for r in run.store.reevaluations(run.id))


def single_lineage_config(run: Run, steps: int | None = None, name: str | None = None) -> SearchConfig:
    """The population-of-one control of a search: its config with ``ga.control = "single_lineage"`` and the
    run's training steps (``stored_steps``, or ``steps``) as the budget, named ``<name>-control``."""
    cfg = run.config
    if not isinstance(cfg, SearchConfig):
        raise ConfigError(f"run '{run.id}' is an IMP run: its control is not a population of one")
    budget = stored_steps(run) if steps is None else steps
    ga = dataclasses.replace(cfg.ga, control="single_lineage", control_steps=budget, reevaluate_elites=False)
    return check_run(dataclasses.replace(cfg, name=name or f"{cfg.name}-control", ga=ga))


def record_run(
    store: Store, cfg: SearchConfig | IMPConfig | CSConfig, shapes: Mapping[str, tuple[int, ...]]
) -> str:
    """The new run's record (its config as given, TOML and JSON, and its identity hash); returns its id.
    ``create_run`` checks the config, the data and the evaluator first; this records only, for a tool that
    drives a loop of its own on the run (``benchmarks/scale.py``, on a simulated cluster)."""
    return store.create_run(
        cfg.name,
        to_toml(cfg),
        json.dumps(to_dict(cfg)),
        config_hash(cfg),
        cfg.seed,
        list(pareto.REF_POINT),
        {n: list(v) for n, v in shapes.items()},
    )


def search(
    config: SearchConfig | str | Path | None = None,
    workspace: str | Path | None = None,
    *,
    local: bool | None = None,
    address: str | None = None,
    progress: Progress | None = None,
    model: Factory | str | None = None,
    data: object = None,
) -> Run:
    """Create a run of ``config`` (on ``model`` and ``data`` where given) and run it to the end; returns the
    finished ``Run``."""
    run = create_run(config, workspace, local=local, address=address, model=model, data=data)
    return run.optimize(progress=progress)


def open_run(
    workspace: str | Path,
    run_id: str,
    *,
    local: bool | None = None,
    address: str | None = None,
    model: Factory | str | None = None,
    data: object = None,
) -> Run:
    """A stored run of ``workspace``; an unknown run, or a store that is not ours, is a one-line error. A
    run on data given from Python needs that ``data`` to be driven or trained again; ``model`` and ``data``
    must be the run's own (``check_own_parts``)."""
    store = Store.open(workspace, create=False)
    try:
        store.run(run_id)
        return Run(store, run_id, local=local, address=address, model=model, data=data)
    except BaseException:
        store.close()
        raise


def check_resumable(store: Store, run_id: str) -> None:
    if store.run(run_id).status == "finished":
        raise StoreError(f"run '{run_id}' has already finished; nothing to resume")


def _create_trajectory_run(
    driver: type[IMPDriver | CSDriver],
    cfg: IMPConfig | CSConfig,
    workspace: str | Path | None,
    own_data: Dataset | None,
    *,
    local: bool | None,
    address: str | None,
) -> Run:
    """A new run of per-init trajectories (IMP or CS) of a checked ``cfg``, its data loaded (the built-in
    dataset, checked against the model's inputs, unless ``own_data``) and its jobs connected before the
    store is opened and the run written, so that a bad dataset or Ray address writes nothing."""
    data = own_data if own_data is not None else imp_data(cfg)
    jobs = driver.open_jobs(cfg, data, local=local, address=address)
    try:
        store = Store.open(workspace or cfg.workspace, create=True)
    except BaseException:
        jobs.close()
        raise
    shapes = Mask.ones(build_model(cfg.model, 0)).shapes
    run = Run(store, record_run(store, cfg, shapes), local=local, address=address)
    run._imp_data, run._imp_jobs, run._own_data = data, jobs, own_data
    return run


def create_imp_run(
    config: IMPConfig | str | Path | None = None,
    workspace: str | Path | None = None,
    *,
    local: bool | None = None,
    address: str | None = None,
    model: Factory | str | None = None,
    data: object = None,
) -> Run:
    """A new IMP run of ``config`` (an ``IMPConfig`` or a TOML file with ``kind = "imp"``; None: the
    defaults) in ``workspace`` (default: the config's), not yet started, on ``model`` and ``data`` where
    given (as ``create_run``). The data, the model's input width and, for Ray, the cluster address are
    checked before anything is written."""
    cfg = config if config is not None else IMPConfig()
    cfg = settings.load_imp_config(cfg) if not isinstance(cfg, IMPConfig) else cfg
    cfg, own_data = with_own_parts(cfg, model, data)
    cfg = check_run(cfg)
    if own_data is not None:
        own_data.check_model(cfg.model, build_model(cfg.model, 0), label="model")
    return _create_trajectory_run(IMPDriver, cfg, workspace, own_data, local=local, address=address)


def imp(
    config: IMPConfig | str | Path | None = None,
    workspace: str | Path | None = None,
    *,
    local: bool | None = None,
    address: str | None = None,
    progress: IMPProgress | None = None,
    model: Factory | str | None = None,
    data: object = None,
) -> Run:
    """Create an IMP run of ``config`` and run every trajectory to its last round; returns the finished
    ``Run`` (its tickets are its individuals: ``run.individuals()``, ``run.front()``, ``run.imp_rounds()``)."""
    run = create_imp_run(config, workspace, local=local, address=address, model=model, data=data)
    return run.optimize(progress=progress)


def create_cs_run(
    config: CSConfig | str | Path,
    workspace: str | Path | None = None,
    *,
    local: bool | None = None,
    address: str | None = None,
) -> Run:
    """A new Continuous Sparsification run of ``config`` (a ``CSConfig`` or a TOML file with
    ``kind = "cs"``) in ``workspace`` (default: the config's), not yet started; checked as ``create_imp_run``."""
    cfg = check_run(config) if isinstance(config, CSConfig) else load_cs_config(config)
    return _create_trajectory_run(CSDriver, cfg, workspace, None, local=local, address=address)


def cs(
    config: CSConfig | str | Path,
    workspace: str | Path | None = None,
    *,
    local: bool | None = None,
    address: str | None = None,
    progress: IMPProgress | None = None,
) -> Run:
    """Create a Continuous Sparsification run of ``config`` and run every trajectory to its last round;
    returns the finished ``Run`` (its tickets are its individuals, its rounds ``run.imp_rounds()``)."""
    return create_cs_run(config, workspace, local=local, address=address).optimize(progress=progress)


def check_same_config(
    run: Run, config: SearchConfig | IMPConfig | CSConfig | str | Path, *, source: str = ""
) -> None:
    """A resume given a config must be given the run's own: one whose hash is the stored one."""
    if isinstance(config, str | Path):
        source = source or str(config)
        load = {RunKind.IMP: load_imp_config, RunKind.CS: load_cs_config}.get(run.kind, load_config)
        config = load(config)
    if config_hash(config) != run.record.config_hash:
        raise ConfigError(
            f"run '{run.id}': the config changed ({source or 'the config'} hashes to"
            f" {config_hash(config)[:12]}, the run to {run.record.config_hash[:12]}); resume without it,"
            " or start a new run"
        )
