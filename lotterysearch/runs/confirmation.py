"""Confirmation: retrain a run's masks under a full training protocol, from their own init and from fresh ones.

Short-training fitness is a proxy. Frankle & Carbin's test of a ticket is the full protocol: train the mask
from the init it was found with (``own``) and, as the control, from new random weights (``reinit``), and
compare the test accuracy at the early-stopping iteration (lowest validation loss). A mask's own init is the
seed it belongs to: an IMP ticket's trajectory seed (rewound as the IMP run rewinds), a pruner seed's pruning
seed (``synflow:seed=S:rho=..``, and its mutated copies), else the search's first fitness init seed (GA
children and random controls are topologies, trained from those seeds during the search). Reinit seeds must
be seeds the run never trained from.

Every training is a job (``backend.jobs``: in this process or a Ray task) whose numbers depend on the mask, the seed
and the protocol only, and each is committed as it finishes (``Store.record_confirmation``) under the
protocol's key (``Protocol.key``). A rerun of the same confirmation trains only what is not stored, so a
killed confirmation resumes to the same numbers; confirmations under other protocols sit beside them.

The summaries (``Retrained``, ``Confirmed``, ``confirmed``) read plain store records and import no torch, so
``lotterysearch front`` shows them without paying for it: what needs torch (``RunInits.data``, ``train_job``,
``Confirmation.of``) imports its modules inside itself, when training starts or a result is read.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import hashlib
import json
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lotterysearch.errors import ConfigError
from lotterysearch.evolution import pareto
from lotterysearch.execution import backend
from lotterysearch.settings import (
    ROUND_KINDS,
    CSConfig,
    RunKind,
    SearchConfig,
    TrainingConfig,
    build_config,
    parse_run_config,
    parse_toml,
    read_config_file,
)
from lotterysearch.stats import mean_std
from lotterysearch.storage.store import ConfirmationRecord, Individual, Store

if TYPE_CHECKING:
    from lotterysearch.core.data import Dataset
    from lotterysearch.training.trainer import TrainResult

# Fresh inits far from every seed a run trains from (seeding and fitness seeds are small integers).
DEFAULT_REINIT_SEEDS = (1000, 1001)

_SEED_ORIGIN = re.compile(r"^(?P<kind>[A-Za-z0-9_]+):seed=(?P<seed>-?\d+)(?::|$)")


# ---- the protocol ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Protocol:
    """The full training a confirmation uses, with the model spec and masking mode it applies to (those of
    the run). ``training.eval_every`` must be set: the result is read at the early-stopping iteration."""

    training: TrainingConfig
    model: str
    mode: str = "forward"

    def __post_init__(self) -> None:
        if not isinstance(self.training, TrainingConfig):
            raise ConfigError(f"a protocol's training must be a TrainingConfig, got {self.training!r}")
        check_evaluated(self.training)

    @property
    def key(self) -> str:
        """12 hex digits of sha256 over the protocol's non-default training fields, the model spec and the
        mode: the same protocol is recognised on resume, and adding a defaulted field renames nothing."""
        default = TrainingConfig()
        fields = {
            f.name: getattr(self.training, f.name)
            for f in dataclasses.fields(TrainingConfig)
            if getattr(self.training, f.name) != getattr(default, f.name)
        }
        text = json.dumps({"training": fields, "model": self.model, "mode": self.mode}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def describe(self) -> str:
        t = self.training
        return (
            f"{t.steps} steps of {t.optimizer} lr {t.lr:g}, batch {t.batch_size}, evaluated every"
            f" {t.eval_every}; {self.model}, mode {self.mode}"
        )


def check_evaluated(training: TrainingConfig, prefix: str = "") -> None:
    """A confirmation reads the early-stopping iteration, so its protocol must evaluate during training."""
    if training.eval_every < 1:
        raise ConfigError(
            f"field '{prefix}eval_every' must be an integer >= 1 to confirm (the early-stopping iteration"
            f" needs evaluations during training), got {training.eval_every!r}"
        )


def load_protocol(path: str | Path) -> TrainingConfig:
    """The ``[training]`` table of a TOML file (other tables, e.g. an IMP run's, are ignored); a missing
    table or a bad field is a one-line ``ConfigError`` (``field 'training.lr' ...``)."""
    table = parse_toml(read_config_file(path), str(path))
    section = table.get("training")
    if not isinstance(section, dict):
        raise ConfigError(f"protocol file '{path}' has no [training] table")
    training = build_config(TrainingConfig, section, "training.")
    check_evaluated(training, "training.")
    return training


# ---- what a run says about its inits ----------------------------------------------------------------
@dataclass(frozen=True)
class RunInits:
    """What confirming needs of a stored run: its kind, model, mode, data, evaluator placement, the seeds it
    trained from, and for an IMP run its protocol and rewind point."""

    kind: RunKind
    model: str
    mode: str
    dataset: str
    data_seed: int
    data_dir: str
    local: bool  # the run's config trains in process
    address: str
    init_seeds: tuple[int, ...]  # every seed the run trained or pruned from
    default_seed: int  # the own init of a mask that belongs to no one seed
    training: TrainingConfig | None = None  # an IMP run's protocol
    rewind_step: int = 0
    trajectories: Mapping[int, int] = dataclasses.field(default_factory=dict)  # IMP: individual -> seed
    data_fingerprint: str = ""  # of data given from Python (dataset "tensors")

    def __post_init__(self) -> None:
        # a kind given as its stored string ("imp") becomes its type, which the readers compare by identity
        object.__setattr__(self, "kind", RunKind(self.kind))

    def data(self, given: object = None) -> Dataset:
        """The run's data: ``given`` from Python (checked against the run's fingerprint), else loaded."""
        from lotterysearch.core.data import given_data, load_dataset
        from lotterysearch.core.models import build_model

        if given is not None:
            data = given_data(given, self.data_seed, self.data_fingerprint, "this run")
        else:
            data = load_dataset(self.dataset, self.data_seed, data_dir=self.data_dir or None)
        data.check_model(self.model, build_model(self.model, 0), label="field 'model':")
        return data


def run_inits(store: Store, run_id: str) -> RunInits:
    """Read a run's settings from its stored config: a search's ``SearchConfig``, an IMP run's
    ``IMPConfig`` (``kind = "imp"``) or a CS run's ``CSConfig`` (``kind = "cs"``) with the trajectory seed of
    each committed round."""
    record = store.run(run_id)
    cfg = parse_run_config(record.config_toml, record.kind, f"run {run_id}")
    common = {
        "kind": record.kind,
        "model": cfg.model,
        "mode": cfg.mode,
        "dataset": cfg.dataset,
        "data_seed": cfg.seed,
        "data_dir": cfg.data_dir,
        "local": backend.runs_locally(cfg.evaluator),
        "address": cfg.ray.address,
        "data_fingerprint": cfg.data_fingerprint,
    }
    if isinstance(cfg, SearchConfig):
        return RunInits(
            **common,
            init_seeds=tuple(dict.fromkeys((*cfg.seeding.init_seeds, *cfg.fitness.init_seeds))),
            default_seed=cfg.fitness.init_seeds[0],
        )
    rounds = cfg.cs if isinstance(cfg, CSConfig) else cfg.imp  # same fields: init_seeds, rewind_step
    return RunInits(
        **common,
        init_seeds=tuple(rounds.init_seeds),
        default_seed=rounds.init_seeds[0],
        training=cfg.training,
        rewind_step=rounds.rewind_step,
        trajectories={r.individual_id: r.trajectory for r in store.imp_rounds(run_id)},
    )


@dataclass(frozen=True)
class Init:
    """Where one training starts: ``seed`` builds the weights and orders the batches. In an IMP run that
    rewinds to step k > 0 every training starts at iteration k (``start_step``) and runs the protocol's
    remaining steps, as the run's rounds do: an own init is first taken to the rewind point by the run's
    dense training (``rewind``, its first k steps), a reinit starts from fresh weights (OpenLTH's control)."""

    init: str  # "own" or "reinit"
    seed: int
    start_step: int = 0
    rewind: TrainingConfig | None = None  # own inits of a rewinding IMP run: the run's protocol


def own_init(ind: Individual, inits: RunInits) -> Init:
    """The init an individual's mask belongs to (see the module docstring)."""
    if inits.kind in ROUND_KINDS:
        seed = inits.trajectories.get(ind.id)
        if seed is None:
            m = _SEED_ORIGIN.match(ind.origin)
            seed = int(m["seed"]) if m else inits.default_seed
        k = inits.rewind_step
        return Init("own", seed, k, inits.training if k else None)
    m = _SEED_ORIGIN.match(ind.origin)
    if m and m["kind"] not in ("random", "child"):
        return Init("own", int(m["seed"]))
    return Init("own", inits.default_seed)


def reinit(seed: int, inits: RunInits) -> Init:
    return Init("reinit", seed, inits.rewind_step if inits.kind in ROUND_KINDS else 0)


# ---- choosing individuals -----------------------------------------------------------------------------
def matches_origin(origin: str, pattern: str) -> bool:
    """``synflow`` (a bare name) selects that pruner's seed masks, not their mutated copies (``+move``);
    a pattern with ``*``, ``?``, ``:`` or ``+`` is matched against the whole origin (``synflow:seed=0:*``)."""
    if any(c in pattern for c in "*?[:+"):
        return fnmatch.fnmatchcase(origin, pattern)
    return origin.split(":")[0] == pattern and "+" not in origin


def select(
    store: Store,
    run_id: str,
    kind: RunKind,
    *,
    ids: Sequence[int] | None = None,
    front: bool = False,
    origin: str | None = None,
) -> list[Individual]:
    """The individuals to confirm: ``ids`` in that order, or those of ``origin``, or the front; by default
    a search's stored front and every ticket of an IMP run."""
    chosen = [ids is not None, front, origin is not None]
    if sum(chosen) > 1:
        raise ConfigError("choose the individuals one way: ids, front or origin")
    if ids is not None:
        if not ids:
            raise ConfigError("no individual ids given")
        return store.individuals(run_id, list(dict.fromkeys(int(i) for i in ids)))
    if origin is not None:
        everyone = store.individuals(run_id)
        picked = [i for i in everyone if matches_origin(i.origin, origin)]
        if not picked:
            known = sorted({i.origin.split(":")[0] for i in everyone})
            raise ConfigError(
                f"no individual of run '{run_id}' has origin '{origin}' (origins: {', '.join(known) or 'none'})"
            )
        return picked
    if kind is RunKind.SEARCH and store.last_generation(run_id) is None:
        raise ConfigError(f"run '{run_id}' has no committed generation yet: no front to confirm")
    return pareto.run_front(store, run_id) if kind is RunKind.SEARCH or front else store.individuals(run_id)


# ---- one training -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Job:
    """One confirmation training, plain values only (it crosses Ray as it is)."""

    individual_id: int
    init: Init
    packed: bytes
    shapes: Mapping[str, tuple[int, ...]]
    protocol: Protocol

    @property
    def key(self) -> tuple[int, str, int]:
        return (self.individual_id, self.init.init, self.init.seed)


def train_job(data: Dataset, job: Job) -> dict[str, Any]:
    """Train one mask under the protocol from its init: ``TrainResult.as_dict()`` with the test split, a
    pure function of the job (the same bits on a rerun, in process or on Ray).

    An own init of a rewinding IMP run trains as the run's rounds do (``pruning.imp_round_from_init``:
    batch seed ``seed + 1`` after the rewind phase), so under the run's own protocol
    it repeats the round's numbers. Iterations (curve, early stop) count from the rewind point, as the run's.
    """
    from lotterysearch.core.masks import Mask
    from lotterysearch.core.models import build_model
    from lotterysearch.pruning.pruners import imp_round_from_init
    from lotterysearch.training.trainer import train

    p, init = job.protocol, job.init
    model = build_model(p.model, init.seed)
    mask = Mask.unpack(job.packed, job.shapes)
    if init.rewind is not None:
        result = imp_round_from_init(
            model, mask, data, p.training, init.start_step, rewind=init.rewind, mode=p.mode, seed=init.seed
        ).result
    else:
        training = p.training.with_steps(p.training.steps - init.start_step)
        result = train(model, mask, data, training, mode=p.mode, seed=init.seed, evaluate_test=True)
    return result.as_dict()


def timed_train_job(data: Dataset, job: Job) -> tuple[dict[str, Any], float]:
    """``train_job`` and the seconds it took where it ran (the compute ledger's wall time)."""
    t0 = time.perf_counter()
    result = train_job(data, job)
    return result, time.perf_counter() - t0


def job_cost(job: Job, result: Mapping[str, Any]) -> tuple[int, float]:
    """(steps, FLOPs on kept weights) of one confirmation training (``runs.ledger``): the steps it trained
    from its init (an own init's rewind point is the run's own dense training, counted with the run)."""
    from lotterysearch.core.masks import Mask
    from lotterysearch.runs.ledger import step_flops

    steps = int(result["steps"])
    mask = Mask.unpack(job.packed, job.shapes)
    return steps, float(steps * step_flops(job.protocol.model, job.protocol.training.batch_size)(mask))


def plan_jobs(
    individuals: Sequence[Individual], inits: RunInits, protocol: Protocol, reinit_seeds: Sequence[int]
) -> list[Job]:
    """Own init then each reinit seed, individual by individual."""
    jobs = []
    for ind in individuals:
        for init in [own_init(ind, inits), *(reinit(s, inits) for s in reinit_seeds)]:
            jobs.append(Job(ind.id, init, ind.packed, dict(ind.shapes or {}), protocol))
    return jobs


# ---- reading confirmations ------------------------------------------------------------------------------
def at_early_stop(result: Mapping[str, Any]) -> tuple[int, float | None]:
    """(iteration, test accuracy) at the early-stopping iteration of a stored result (after the last step
    when it has none)."""
    es = result.get("early_stop")
    if es:
        return int(es["step"]), es.get("test_accuracy")
    return int(result["steps"]), result.get("test_accuracy")


@dataclass(frozen=True)
class Retrained:
    """The trainings of one mask from one kind of init: seeds, test accuracy and iteration at early stop."""

    seeds: tuple[int, ...] = ()
    accuracies: tuple[float, ...] = ()
    stops: tuple[int, ...] = ()

    @property
    def n(self) -> int:
        return len(self.seeds)

    @property
    def mean(self) -> float | None:
        return mean_std(self.accuracies)["mean"] if self.accuracies else None

    @property
    def std(self) -> float | None:
        """Sample standard deviation (ddof = 1), 0 for one training (``stats.mean_std``)."""
        return mean_std(self.accuracies)["std"] if self.accuracies else None

    @property
    def stop(self) -> float | None:
        """Mean early-stopping iteration."""
        return sum(self.stops) / len(self.stops) if self.stops else None


@dataclass(frozen=True)
class Confirmed:
    """One individual's confirmation under one protocol: its own init, and the reinit control."""

    individual_id: int
    protocol: str
    own: Retrained
    reinit: Retrained


def latest_protocol(records: Iterable[ConfirmationRecord]) -> str | None:
    """The protocol of the most recent confirmation (what a report shows when none is named)."""
    latest = max(records, key=lambda r: (r.created or "", r.protocol), default=None)
    return None if latest is None else latest.protocol


def confirmed(records: Sequence[ConfirmationRecord], protocol: str | None = None) -> dict[int, Confirmed]:
    """Per-individual summaries of ``records`` under ``protocol`` (default: the latest one used), by id."""
    protocol = protocol or latest_protocol(records)
    parts: dict[int, dict[str, list[tuple[int, float, int]]]] = {}
    for r in records:
        if r.protocol != protocol:
            continue
        stop, acc = at_early_stop(r.result)
        if acc is None:
            continue
        parts.setdefault(r.individual_id, {"own": [], "reinit": []})[r.init].append((r.seed, acc, stop))

    def retrained(rows: list[tuple[int, float, int]]) -> Retrained:
        rows = sorted(rows)
        return Retrained(
            tuple(s for s, _, _ in rows), tuple(a for _, a, _ in rows), tuple(k for *_, k in rows)
        )

    return {
        i: Confirmed(i, protocol, retrained(p["own"]), retrained(p["reinit"]))
        for i, p in sorted(parts.items())
    }


def stored_confirmed(store: Store, run_id: str, protocol: str | None = None) -> dict[int, Confirmed]:
    return confirmed(store.confirmations(run_id), protocol)


@dataclass(frozen=True)
class Confirmation:
    """A stored confirmation with its numbers as a ``TrainResult`` (curve, early stop, test accuracy)."""

    run_id: str
    individual_id: int
    init: str
    seed: int
    protocol: str
    result: TrainResult
    created: str | None = None

    @classmethod
    def of(cls, record: ConfirmationRecord) -> Confirmation:
        from lotterysearch.training.trainer import TrainResult

        return cls(
            record.run_id,
            record.individual_id,
            record.init,
            record.seed,
            record.protocol,
            TrainResult.from_dict(record.result),
            record.created,
        )

    @property
    def early_stop_step(self) -> int:
        return self.result.early_stop.step if self.result.early_stop else self.result.steps

    @property
    def test_accuracy(self) -> float | None:
        """Test accuracy at the early-stopping iteration."""
        es = self.result.early_stop
        return es.test_accuracy if es else self.result.test_accuracy


# ---- the driver -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Plan:
    """A checked confirmation, before anything is trained: the individuals, the protocol and the jobs."""

    run_id: str
    individuals: list[Individual]
    protocol: Protocol
    reinit_seeds: tuple[int, ...]
    jobs: list[Job]
    todo: list[Job]  # the jobs not yet stored, to train
    inits: RunInits
    from_rounds: dict[tuple[int, str, int], dict[str, Any]] = dataclasses.field(default_factory=dict)

    @property
    def stored(self) -> int:
        return len(self.jobs) - len(self.todo) - len(self.from_rounds)


def resolve_protocol(inits: RunInits, run_id: str, protocol: TrainingConfig | str | Path | None) -> Protocol:
    """A ``TrainingConfig``, a TOML file with a ``[training]`` table, or (IMP runs) the run's own."""
    if protocol is None:
        if inits.training is None:
            raise ConfigError(
                f"run '{run_id}' is a search: confirming it needs --protocol FILE.toml (a [training] table)"
            )
        training = inits.training
    elif isinstance(protocol, TrainingConfig):
        training = protocol.training()
    else:
        training = load_protocol(protocol)
    try:
        return Protocol(training, inits.model, inits.mode)
    except ConfigError as e:
        if protocol is None:
            raise ConfigError(
                f"the protocol of IMP run '{run_id}' cannot confirm ({e}); pass --protocol FILE.toml"
            ) from None
        raise


def plan(
    store: Store,
    run_id: str,
    *,
    ids: Sequence[int] | None = None,
    front: bool = False,
    origin: str | None = None,
    protocol: TrainingConfig | str | Path | None = None,
    reinit_seeds: Sequence[int] = DEFAULT_REINIT_SEEDS,
) -> Plan:
    """Check everything a confirmation needs and list its jobs, writing nothing."""
    inits = run_inits(store, run_id)
    proto = resolve_protocol(inits, run_id, protocol)
    k, t = (inits.rewind_step if inits.kind in ROUND_KINDS else 0), proto.training
    if t.steps - k < t.eval_every:
        raise ConfigError(
            f"field 'training.steps' must leave at least eval_every ({t.eval_every}) steps after the rewind"
            f" step {k} of run '{run_id}', got {t.steps}"
        )
    individuals = select(store, run_id, inits.kind, ids=ids, front=front, origin=origin)
    reinit = tuple(dict.fromkeys(int(s) for s in reinit_seeds))
    own = sorted({own_init(i, inits).seed for i in individuals} | set(inits.init_seeds))
    clash = [s for s in reinit if s in own]
    if clash:
        raise ConfigError(
            f"reinit seed {clash[0]} is an init seed of run '{run_id}' ({', '.join(map(str, own))}); a reinit"
            " control needs weights the run never trained from"
        )
    jobs = plan_jobs(individuals, inits, proto, reinit)
    done = {(r.individual_id, r.init, r.seed) for r in store.confirmations(run_id, proto.key)}
    rounds = round_results(store, run_id, inits, proto)
    from_rounds = {j.key: rounds[j.key] for j in jobs if j.key not in done and j.key in rounds}
    todo = [j for j in jobs if j.key not in done and j.key not in from_rounds]
    return Plan(run_id, individuals, proto, reinit, jobs, todo, inits, from_rounds)


def round_results(
    store: Store, run_id: str, inits: RunInits, proto: Protocol
) -> dict[tuple[int, str, int], dict[str, Any]]:
    """An IMP ticket's own-init training under its run's own protocol is its round's training (``train_job``
    repeats it to the bit), so the round's stored numbers are that confirmation: by job key, none for a
    search or another protocol."""
    if inits.kind not in ROUND_KINDS or inits.training is None:
        return {}
    if Protocol(inits.training, inits.model, inits.mode).key != proto.key:
        return {}
    return {(r.individual_id, "own", r.trajectory): r.result for r in store.imp_rounds(run_id)}


OnResult = Callable[[Job, dict[str, Any]], None]


def run_plan(
    store: Store,
    p: Plan,
    *,
    data: object = None,
    local: bool | None = None,
    address: str | None = None,
    on_result: OnResult | None = None,
) -> None:
    """Train the plan's jobs not yet stored, committing each as it finishes, under the run's driver lock;
    the own-init confirmations an IMP run's rounds already are (``Plan.from_rounds``) are committed first."""
    if not p.todo and not p.from_rounds:
        return
    with store.driving(p.run_id):
        by_job = {j.key: j for j in p.jobs}
        for key, result in p.from_rounds.items():
            store.record_confirmation(  # the round's training, already in the run's ledger: no cost here
                ConfirmationRecord(
                    p.run_id,
                    key[0],
                    key[1],
                    key[2],
                    p.protocol.key,
                    result,
                    steps=0,
                    flops=0.0,
                    wall_time=0.0,
                )
            )
            if on_result is not None:
                on_result(by_job[key], result)
        if not p.todo:
            return
        data = p.inits.data(data)
        in_process = local if local is not None else p.inits.local
        runner = backend.jobs(
            timed_train_job, data, local=in_process, address=address or p.inits.address or None
        )
        try:
            for job in p.todo:
                runner.submit(job.key, job)
            by_key = {j.key: j for j in p.todo}
            while runner.pending():
                key, (result, seconds) = runner.next_done()
                job = by_key[key]
                steps, flops = job_cost(job, result)
                store.record_confirmation(
                    ConfirmationRecord(
                        p.run_id,
                        job.individual_id,
                        job.init.init,
                        job.init.seed,
                        p.protocol.key,
                        result,
                        steps=steps,
                        flops=flops,
                        wall_time=seconds,
                    )
                )
                if on_result is not None:
                    on_result(job, result)
        finally:
            runner.close()


def confirm(
    workspace: str | Path,
    run_id: str,
    *,
    ids: Sequence[int] | None = None,
    front: bool = False,
    origin: str | None = None,
    protocol: TrainingConfig | str | Path | None = None,
    reinit_seeds: Sequence[int] = DEFAULT_REINIT_SEEDS,
    local: bool | None = None,
    address: str | None = None,
    on_result: OnResult | None = None,
    data: object = None,
) -> dict[int, Confirmed]:
    """Retrain the chosen masks of a stored run under ``protocol`` from their own init and from each
    ``reinit_seeds`` seed; returns the summaries of the chosen individuals, by id in the order chosen.

    ``protocol``: a ``TrainingConfig`` or a TOML file's ``[training]`` table (default for an IMP run: its
    own). Individuals: ``ids``, ``origin`` (see ``matches_origin``) or ``front`` (default: a search's front,
    an IMP run's tickets). Everything is checked before anything is written; what is stored is not trained
    again. ``on_result(job, result)`` is called as each training is committed. ``data``: a run's data given
    from Python (``data.as_dataset``), which must be the run's own (its fingerprint).
    """
    with Store.open(workspace) as store:
        p = plan(
            store,
            run_id,
            ids=ids,
            front=front,
            origin=origin,
            protocol=protocol,
            reinit_seeds=reinit_seeds,
        )
        run_plan(store, p, data=data, local=local, address=address, on_result=on_result)
        return plan_summaries(store, p)


def plan_summaries(store: Store, p: Plan) -> dict[int, Confirmed]:
    """The plan's individuals' summaries under its protocol (an empty one for an individual not trained)."""
    found = stored_confirmed(store, p.run_id, p.protocol.key)
    empty = Retrained()
    return {i.id: found.get(i.id, Confirmed(i.id, p.protocol.key, empty, empty)) for i in p.individuals}


# ---- lines for the command line ---------------------------------------------------------------------------
def plan_line(p: Plan) -> str:
    """What a confirmation will do: individuals, protocol, trainings stored and to train."""
    n = len(p.individuals)
    seeds = f"seed{'s' * (len(p.reinit_seeds) != 1)} {', '.join(map(str, p.reinit_seeds))}"
    reinit = f" + reinit {seeds}" if p.reinit_seeds else ""
    return (
        f"confirming {n} individual{'s' * (n != 1)} of run {p.run_id} under protocol {p.protocol.key}"
        f" ({p.protocol.describe()}): {len(p.jobs)} trainings (own init{reinit}), {p.stored} stored,"
        + (f" {len(p.from_rounds)} from their IMP rounds," if p.from_rounds else "")
        + f" {len(p.todo)} to train"
    )


def job_line(job: Job, result: Mapping[str, Any]) -> str:
    """One finished training: individual, init, seed, early-stopping iteration and test accuracy there."""
    stop, acc = at_early_stop(result)
    acc_text = "-" if acc is None else f"{acc:.4f}"
    return (
        f"individual {job.individual_id} {job.init.init} seed {job.init.seed}: early stop at iteration {stop},"
        f" test accuracy {acc_text}"
    )


def protocol_key(store: Store, run_id: str, protocol: str | Protocol | TrainingConfig | None) -> str | None:
    """The stored key of ``protocol``: a key as it is, a ``Protocol``'s, or a ``TrainingConfig``'s with the
    run's model and mode."""
    if protocol is None or isinstance(protocol, str):
        return protocol
    if isinstance(protocol, Protocol):
        return protocol.key
    inits = run_inits(store, run_id)
    return Protocol(protocol.training(), inits.model, inits.mode).key
