"""Ray at the edge of the search: connect to a cluster, evaluator actors, a pool that keeps them busy.

The driver keeps every DEAP object; an evaluator receives packed mask bytes and returns plain
numbers (DEAP's ``creator`` classes do not unpickle on workers). The dataset is ``ray.put`` once per pool and
each evaluator actor keeps its own copy as torch tensors, so an evaluation ships only a few hundred bytes. The
pool keeps every actor busy with ``ray.wait`` and retries an evaluation whose worker process or node died.

Small networks are trained a batch at a time (``batched.py``): the pool hands an evaluator up to
``batch`` masks per call, splitting the queue evenly over the evaluators' slots. Which masks share a
call depends on timing, and it does not matter: a mask's objectives do not depend on its companions
(``fitness.evaluate_masks``), so results are the same bit for bit whatever the scheduling.
"""

from __future__ import annotations

import math
import os
import socket
import time
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import ray
import torch
from ray.exceptions import (
    LocalRayletDiedError,
    NodeDiedError,
    ObjectLostError,
    OutOfMemoryError,
    RayActorError,
    RayTaskError,
    WorkerCrashedError,
)

from lotterysearch.core import modules
from lotterysearch.core.data import Dataset
from lotterysearch.core.masks import Mask, check_mode
from lotterysearch.core.models import build_model, is_factory
from lotterysearch.errors import ConfigError, LotterySearchError
from lotterysearch.evolution import operators
from lotterysearch.evolution.operators import VariationConfig
from lotterysearch.execution.evaluators import (
    BaseEvaluator,
    BreedJob,
    BreedResult,
    EvalResult,
    Job,
    breed_batch,
    breed_result,
)
from lotterysearch.execution.jobs import on_one_thread
from lotterysearch.settings import FitnessConfig, RayConfig
from lotterysearch.training.fitness import Objectives, evaluate_masks, fitness_key, key_order, masks_per_call

# Seconds a TCP connect to the cluster's address may take before ``connect`` gives up. Without this check
# ``ray.init`` spends 3-5 minutes on an address where nothing listens and then exits the process.
CONNECT_TIMEOUT_S = 5.0
KEYS_TIMEOUT_S = 30.0  # how long class keys wait for the evaluators before the driver computes them
KEY_MARGIN_S = 0.1  # and per mask of the largest chunk (a LeNet-300-100 key takes 2-15 ms)

# The failures of a worker process or node, as opposed to an exception raised by the evaluation itself:
# only these are retried.
WORKER_LOST = (
    RayActorError,
    WorkerCrashedError,
    NodeDiedError,
    ObjectLostError,
    OutOfMemoryError,
    LocalRayletDiedError,
)


class EvaluationError(LotterySearchError):
    """An evaluation could not be completed: its workers kept dying, or it raised."""


# ---- connecting ------------------------------------------------------------------------------------
_initialised_here = False  # whether ``connect`` called ``ray.init`` (then ``disconnect`` undoes it)


def parse_address(address: str) -> tuple[str, int]:
    """``host:port`` (also ``ray://host:port`` and ``[v6]:port``) → (host, port); ``ConfigError`` otherwise."""
    rest = address.strip()
    if rest.startswith("ray://"):
        rest = rest[len("ray://") :]
    host, sep, port = rest.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(
            f"Ray address '{address}' is not host:port (e.g. 127.0.0.1:6379, the port `ray start --head` printed)"
        )
    return host, int(port)


def check_reachable(address: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Raise ``ConfigError`` unless something accepts a TCP connection at ``address`` within ``timeout`` s.

    Ray resolves a loopback host to this machine's own IP, so both are checked.
    """
    host, port = parse_address(address)
    hosts = [host]
    try:
        from ray._private.services import resolve_ip_for_localhost

        hosts.append(resolve_ip_for_localhost(host))
    except Exception:  # a private helper: checking the given host alone is still useful
        pass
    for h in dict.fromkeys(hosts):
        try:
            socket.create_connection((h, port), timeout=timeout).close()
        except socket.gaierror:
            raise ConfigError(f"cannot reach the Ray cluster at '{address}': unknown host '{h}'") from None
        except ConnectionRefusedError:
            raise ConfigError(
                f"cannot reach the Ray cluster at '{address}': nothing listens on {h}:{port}"
                " (is `ray start --head` running there?)"
            ) from None
        except OSError as e:  # timeout, no route, ...
            reason = f"no answer within {timeout:g} s" if isinstance(e, TimeoutError) else str(e)
            raise ConfigError(f"cannot reach the Ray cluster at '{address}': {reason}") from None


def cluster_summary() -> dict[str, Any]:
    """Alive nodes and their CPUs, for the progress display (read again when nodes join or leave)."""
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    return {
        "address": ray.get_runtime_context().gcs_address,
        "nodes": len(nodes),
        "cpus": sum(float(n["Resources"].get("CPU", 0.0)) for n in nodes),
    }


def _same_endpoint(address: str, gcs_address: str) -> bool:
    """Whether ``address`` names the GCS this process already talks to (hosts compared as resolved IPs).

    A ``ray://`` client address names a different port than the GCS, so it is taken as given."""
    if address.startswith("ray://"):
        return True
    (h1, p1), (h2, p2) = parse_address(address), parse_address(gcs_address)

    def ip(host: str) -> str:
        try:
            return socket.gethostbyname(host)
        except OSError:
            return host

    return p1 == p2 and (h1 == h2 or ip(h1) == ip(h2))


def connect(address: str | None = None, *, num_cpus: int | None = None) -> dict[str, Any]:
    """Make sure this process talks to a Ray cluster and return ``cluster_summary()``.

    An initialised Ray is reused, unless ``address`` names another cluster (a one-line error). Otherwise
    ``address`` (else ``$RAY_ADDRESS``) names a cluster to join; ``None`` or ``"local"`` starts a private
    local Ray with ``num_cpus`` CPUs (all by default). The local case passes ``address="local"`` on purpose:
    a bare ``ray.init()`` would join whatever cluster ``ray start`` last launched on this machine. Joining first checks the address with a TCP connect
    (``CONNECT_TIMEOUT_S``); past that, Ray's own budget applies (about 20 s when the port answers but is not
    a Ray cluster we may join, e.g. a token mismatch), and every failure is a one-line ``ConfigError``.
    """
    global _initialised_here
    address = address or os.environ.get("RAY_ADDRESS") or None
    if ray.is_initialized():
        joined = ray.get_runtime_context().gcs_address
        if address not in (None, "local", "auto") and not _same_endpoint(address, joined):
            raise ConfigError(
                f"this process is already connected to the Ray cluster at '{joined}'; it cannot also join '{address}'"
            )
        return cluster_summary()
    if address in (None, "local"):
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
        _initialised_here = True
        return cluster_summary()
    if num_cpus is not None:
        raise ConfigError(
            f"num_cpus sizes a local Ray only; the cluster at '{address}' has its own CPUs (drop one of the two)"
        )
    if address != "auto":
        check_reachable(address)
    try:
        ray.init(address=address, log_to_driver=False)
    except (
        ConnectionError,
        RuntimeError,
        ValueError,
        TimeoutError,
        ray.exceptions.RayError,
        SystemExit,
    ) as e:
        ray.shutdown()
        hint = ""
        if os.environ.get("RAY_AUTH_MODE", "").lower() != "token":
            hint = (
                "; if the cluster uses token authentication (Ray's default), set RAY_AUTH_MODE=token and"
                " provide its token (~/.ray/auth_token, RAY_AUTH_TOKEN_PATH or RAY_AUTH_TOKEN)"
            )
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(f"cannot join the Ray cluster at '{address}': {first}{hint}") from None
    _initialised_here = True
    return cluster_summary()


def disconnect() -> None:
    """Undo ``connect``: shut down (or leave) the Ray it initialised; a Ray someone else started stays."""
    global _initialised_here
    if _initialised_here:
        ray.shutdown()
        _initialised_here = False


# ---- the evaluator actor ---------------------------------------------------------------------------
def dataset_arrays(data: Dataset) -> dict[str, Any]:
    """What evaluators need of a dataset, as numpy arrays: train and validation (fitness never reads test)."""
    empty = np.zeros((0, *data.x_test.shape[1:]), dtype=np.float32)
    return {
        "name": data.name,
        "num_classes": data.num_classes,
        "x_train": data.x_train.detach().cpu().numpy(),
        "y_train": data.y_train.detach().cpu().numpy(),
        "x_val": data.x_val.detach().cpu().numpy(),
        "y_val": data.y_val.detach().cpu().numpy(),
        "x_test": empty,
        "y_test": np.zeros(0, dtype=np.int64),
    }


def dataset_from_arrays(arrays: Mapping[str, Any]) -> Dataset:
    """Inverse of ``dataset_arrays``. Arrays from Ray's object store are read-only views: copy them."""

    def t(key: str) -> torch.Tensor:
        return torch.from_numpy(np.array(arrays[key], copy=True))

    return Dataset(
        str(arrays["name"]),
        t("x_train"),
        t("y_train"),
        t("x_val"),
        t("y_val"),
        t("x_test"),
        t("y_test"),
        int(arrays["num_classes"]),
    )


class EvaluatorActor:
    """Holds the dataset, model spec and fitness config; scores packed masks (``evaluate_masks``).

    Made a Ray actor by ``EvaluatorPool`` (``ray.remote`` with the pool's CPUs per evaluation). Torch uses
    as many threads as the actor has CPUs, one by default: one evaluator per CPU, no oversubscription, and
    the result equals an in-process ``evaluate_mask`` under one thread bit for bit.

    Every call carries ``data = [ray.put(dataset_arrays(...))]``, fetched and copied into torch tensors on
    the first call only. Nested in a list the reference is not resolved by Ray, and keeping it out of the
    constructor keeps restarts safe: Ray cannot restart an actor whose constructor arguments live in the
    object store (ray-project/ray#53727), and a restarted process simply loads the data again.
    """

    def __init__(
        self, model_spec: str, fitness_cfg: FitnessConfig, mode: str = "forward", threads: int = 1
    ) -> None:
        torch.set_num_threads(max(1, int(threads)))
        self.model_spec, self.fitness_cfg, self.mode = model_spec, fitness_cfg, mode
        self.data: Dataset | None = None
        self.error: LotterySearchError | None = None
        self.known: set[str] = set()
        try:  # fail on the first call with the config's own message, not as a dead actor
            check_mode(mode)
            build_model(model_spec, 0)
        except LotterySearchError as e:
            self.error = e

    def _prepare(self, data: list[Any]) -> Dataset:
        if self.error is not None:
            raise self.error
        if self.data is None:
            self.data = dataset_from_arrays(ray.get(data[0]))
        return self.data

    def info(self, data: list[Any]) -> dict[str, Any]:
        """Load the data; say where this evaluator runs (Ray node id, hostname, process id)."""
        self._prepare(data)
        return {
            "node": ray.get_runtime_context().get_node_id(),
            "hostname": socket.gethostname(),
            "pid": os.getpid(),
        }

    def evaluate(
        self, packed: bytes, shapes: Mapping[str, tuple[int, ...]], data: list[Any], steps: int | None = None
    ) -> dict[str, Any]:
        """Objectives of one packed mask (``Mask.pack``) as plain numbers, plus where and how long."""
        return self.evaluate_batch([packed], shapes, data, steps)[0]

    def evaluate_batch(
        self,
        packed: list[bytes],
        shapes: Mapping[str, tuple[int, ...]],
        data: list[Any],
        steps: int | None = None,
        order: int = 0,
        orders: list[int | None] | None = None,
    ) -> list[dict[str, Any]]:
        """``evaluate`` of each packed mask, trained together; ``steps`` overrides the config's budget,
        ``order`` its order of minibatches (elite re-evaluation), ``orders`` gives masks their own batch
        orders (``fitness.evaluate_masks``). Each result's ``wall_time`` is its share of the call (the call's
        time over the masks)."""
        dataset = self._prepare(data)
        masks = [Mask.unpack(p, shapes) for p in packed]
        cfg = self.fitness_cfg if steps is None else self.fitness_cfg.with_steps(steps)
        cfg = cfg.with_batch_order(order) if order else cfg
        start = time.perf_counter()
        objectives = evaluate_masks(masks, self.model_spec, dataset, cfg, self.mode, orders)
        share = (time.perf_counter() - start) / max(1, len(masks))
        where = self.info(data)
        return [
            {"objectives": o.as_dict(), "wall_time": share, "batch": len(masks), **where} for o in objectives
        ]

    def class_keys(self, packed: list[bytes], shapes: Mapping[str, tuple[int, ...]]) -> list[str]:
        """``fitness.fitness_key`` of each packed mask: the driver's class keys, computed here."""
        return [fitness_key(Mask.unpack(p, shapes), self.fitness_cfg.mode) for p in packed]

    def breed_batch(
        self,
        jobs: list[BreedJob],
        shapes: Mapping[str, tuple[int, ...]],
        data: list[Any],
        variation: VariationConfig,
        known: list[str],
    ) -> list[dict[str, Any]]:
        """``evaluators.breed_batch`` here: ``known`` adds the classes the driver published since this
        evaluator's last call (kept in ``self.known``, which a restarted process rebuilds from the pool)."""
        dataset = self._prepare(data)
        self.known.update(known)

        def train(masks: list[Mask]) -> list[Objectives]:
            return evaluate_masks(masks, self.model_spec, dataset, self.fitness_cfg, self.mode)

        outs = breed_batch(jobs, dict(shapes), variation, self.known, train, self.fitness_cfg.mode)
        where = self.info(data)
        return [{**out, **where} for out in outs]


# ---- the pool --------------------------------------------------------------------------------------
@dataclass(eq=False)
class _Actor:
    handle: Any
    busy: int = 0
    ready: bool = False  # answered ``info`` since it was created or last lost an evaluation
    failures: int = 0  # ``info`` calls failed in a row
    published: int = 0  # how many of the pool's published class keys this actor's process holds


@dataclass(eq=False)
class _Job:
    key: str
    payload: Any  # a packed mask (``evaluate``) or a ``BreedJob`` (``breed``)
    attempts: int = 0
    losses: list[str] = field(default_factory=list)


# what a pool call runs: (actor, its jobs) → the call's object ref; and one result from (job, output)
_Submit = Callable[["_Actor", list[_Job]], Any]
_Result = Callable[[_Job, dict[str, Any]], Any]


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def factory_env(model_spec: str) -> dict[str, Any]:
    """Actor options that let Ray's workers import a user's factory (``model_spec`` an import path): the
    folder this process imports it from, first on their ``PYTHONPATH``. On a cluster that folder must exist
    on every node (a shared file system), or the module be installed there."""
    root = modules.import_root(model_spec) if is_factory(model_spec) else None
    if root is None:
        return {}
    path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)
    return {"runtime_env": {"env_vars": {"PYTHONPATH": path}}}


class EvaluatorPool:
    """Evaluator actors over the cluster, started on first use; ``evaluate`` streams results.

    Each evaluator runs up to ``in_flight_per_evaluator`` calls at a time (the next one waits in the actor,
    so it starts without a round trip), each with up to ``batch`` masks (``None``: chosen from the
    network's size by ``fitness.masks_per_call``: the batched kernel's K).

    ``ray`` (the run's ``[ray]`` settings) sizes the evaluators. ``num_evaluators = 0`` gives one evaluator
    per ``cpus_per_eval`` CPUs on each alive node (and, with ``gpus_per_eval > 0``, no more than its GPUs
    hold shares of ``gpus_per_eval``), and the pool grows when nodes join (checked at each ``evaluate``).
    An actor whose process dies is restarted by Ray (``max_restarts=-1``); the evaluation it held is
    retried on the next ready actor, up to ``max_attempts`` times in all, and an actor receives work again
    only after it answers ``info`` (so nothing waits on an actor stuck restarting after its node left). If no evaluator is ready for ``ready_timeout`` seconds
    while work waits (all CPUs taken, say by another pool), ``evaluate`` raises instead of hanging.
    """

    def __init__(
        self,
        dataset: Dataset,
        model_spec: str,
        fitness_cfg: FitnessConfig,
        *,
        mode: str = "forward",
        ray: RayConfig | None = None,
        max_attempts: int = 3,
        in_flight_per_evaluator: int = 2,
        ready_timeout: float = 300.0,
        batch: int | None = None,
    ) -> None:
        if max_attempts < 1:
            raise ConfigError(f"max_attempts must be >= 1, got {max_attempts}")
        if in_flight_per_evaluator < 1:
            raise ConfigError(f"in_flight_per_evaluator must be >= 1, got {in_flight_per_evaluator}")
        if batch is not None and batch < 1:
            raise ConfigError(f"batch must be >= 1 (or None to choose from the network), got {batch}")
        self.dataset, self.model_spec, self.fitness_cfg, self.mode = dataset, model_spec, fitness_cfg, mode
        self.ray = ray or RayConfig()
        self.max_attempts, self.in_flight = max_attempts, in_flight_per_evaluator
        self.ready_timeout = float(ready_timeout)
        if batch is None:
            try:
                batch = masks_per_call(model_spec, fitness_cfg.batch_size)
            except LotterySearchError:
                batch = 1  # a bad spec: the evaluators report it with their own message
        self.batch = int(batch)
        self._actor_class: Any = None
        self._data_ref: Any = None
        self._actors: list[_Actor] = []
        self._probes: dict[Any, _Actor] = {}  # info() call → actor, while it (re)starts
        self._orphans: dict[Any, _Actor] = {}  # calls left running by an abandoned ``evaluate``
        self._replaced = 0  # actors replaced since the last finished evaluation
        self._published: list[str] = []  # class keys the driver published, in order (``publish``)
        self._published_set: set[str] = set()

    # ---- actors -------------------------------------------------------------------------------
    def _start(self) -> None:
        if self._actor_class is not None:
            return
        if not ray.is_initialized():
            connect()
        self._data_ref = ray.put(dataset_arrays(self.dataset))
        self._actor_class = ray.remote(EvaluatorActor).options(
            num_cpus=self.ray.cpus_per_eval,
            num_gpus=self.ray.gpus_per_eval,
            max_restarts=-1,
            max_task_retries=0,  # the pool retries, so that it can count attempts
            scheduling_strategy="SPREAD",
            **factory_env(self.model_spec),
        )

    def _target_size(self) -> int:
        if self.ray.num_evaluators:
            return self.ray.num_evaluators
        nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
        slots = [self._slots(r, "CPU", self.ray.cpus_per_eval) for r in nodes]
        if self.ray.gpus_per_eval > 0:
            slots = [
                min(s, self._slots(r, "GPU", self.ray.gpus_per_eval))
                for s, r in zip(slots, nodes, strict=True)
            ]
        if max(slots, default=0) < 1:
            for kind, need in (("CPU", self.ray.cpus_per_eval), ("GPU", self.ray.gpus_per_eval)):
                have = max((float(r.get(kind, 0.0)) for r in nodes), default=0.0)
                if have < need:
                    raise ConfigError(
                        f"each evaluation asks for {need:g} {kind}s but no node of the Ray cluster has that"
                        f" many (largest: {have:g}); "
                        + (
                            "lower cpus_per_eval"
                            if kind == "CPU"
                            else "set gpus_per_eval = 0 to train on CPUs"
                        )
                    )
            raise ConfigError(  # enough of each, never on one node
                f"each evaluation asks for {self.ray.cpus_per_eval:g} CPUs and {self.ray.gpus_per_eval:g} GPUs, but no"
                " node of the Ray cluster has both; lower cpus_per_eval or gpus_per_eval"
            )
        return sum(slots)

    @staticmethod
    def _slots(resources: Mapping[str, float], kind: str, need: float) -> int:
        """Evaluators asking for ``need`` of ``kind`` that fit in a node's ``resources``."""
        return int(float(resources.get(kind, 0.0)) // need)

    def _grow(self) -> None:
        self._start()
        target = self._target_size()
        while len(self._actors) < target:
            self._add_actor()

    def _add_actor(self) -> None:
        threads = max(1, int(self.ray.cpus_per_eval))
        handle = self._actor_class.remote(self.model_spec, self.fitness_cfg, self.mode, threads)
        actor = _Actor(handle)
        self._actors.append(actor)
        self._probe(actor)

    def _probe(self, actor: _Actor) -> None:
        actor.ready = False
        actor.published = 0  # a restarted process holds none of the published keys
        # Ray retries the call across restarts: it answers once the (restarted) process is up.
        self._probes[actor.handle.info.options(max_task_retries=-1).remote([self._data_ref])] = actor

    def _settle_probe(self, ref: Any) -> None:
        actor = self._probes.pop(ref)
        if actor not in self._actors:
            return
        try:
            ray.get(ref)
        except RayTaskError as e:  # the evaluator could not take its config: no retry will help
            raise _task_failure(e, "an evaluator could not start") from None
        except WORKER_LOST as e:
            if isinstance(e, RayActorError) and e.actor_init_failed:
                raise EvaluationError(f"an evaluator could not start: {_first_line(e)}") from e
            actor.failures += 1
            if actor.failures < self.max_attempts:
                self._probe(actor)  # a call that reached the dying process; the restarted one answers
            else:
                self._replace(actor, e)  # fails at once every time: dead for good, start a fresh one
        else:
            actor.failures, actor.ready = 0, True

    def _replace(self, actor: _Actor, cause: BaseException) -> None:
        self._replaced += 1
        if self._replaced > self.max_attempts * max(1, len(self._actors)):
            raise EvaluationError(
                f"evaluator actors keep dying before they can work ({self._replaced} replaced without a"
                f" finished evaluation; last: {_first_line(cause)})"
            )
        self._actors.remove(actor)
        self._add_actor()

    def _stalled_message(self) -> str:
        free = ray.available_resources()
        need, has = f"{self.ray.cpus_per_eval:g} CPUs", f"{free.get('CPU', 0.0):g}"
        if self.ray.gpus_per_eval > 0:
            need, has = (
                f"{need} and {self.ray.gpus_per_eval:g} GPUs",
                f"{has} CPUs and {free.get('GPU', 0.0):g} GPUs",
            )
        return (
            f"no evaluator became ready within {self.ready_timeout:g} s (each needs {need}, the Ray cluster has"
            f" {has} free): are its {'CPUs' if self.ray.gpus_per_eval == 0 else 'CPUs or GPUs'} taken by other work?"
        )

    def _settle_orphan(self, ref: Any) -> None:
        self._orphans.pop(ref).busy -= 1

    # ---- evaluation ---------------------------------------------------------------------------
    def evaluate(
        self,
        jobs: Iterable[tuple[str, bytes]],
        shapes: Mapping[str, tuple[int, ...]],
        steps: int | None = None,
    ) -> Iterator[EvalResult]:
        """Yield one ``EvalResult`` per ``(key, packed mask)`` job, in order of completion.

        ``steps`` trains for that many steps instead of the config's (successive halving). A freed actor gets
        its next call before results are yielded, so the caller's bookkeeping overlaps with training. An
        evaluation whose worker died is retried (with the rest of its call); one that died ``max_attempts``
        times, or that raised, raises (``EvaluationError``, or the ``LotterySearchError`` it raised).
        """
        for group in self.evaluate_ready(jobs, shapes, steps):
            yield from group

    def evaluate_ready(
        self,
        jobs: Iterable[tuple[str, bytes]],
        shapes: Mapping[str, tuple[int, ...]],
        steps: int | None = None,
        order: int = 0,
    ) -> Iterator[list[EvalResult]]:
        """``evaluate``'s results, one list per finished call (the masks trained together); ``order``: the
        order of minibatches (``FitnessConfig.batch_order``)."""
        queue = deque(_Job(str(key), bytes(packed)) for key, packed in jobs)
        shapes = {str(n): tuple(int(d) for d in s) for n, s in shapes.items()}

        def submit(actor: _Actor, batch: list[_Job]) -> Any:
            return actor.handle.evaluate_batch.remote(
                [j.payload for j in batch],
                shapes,
                [self._data_ref],
                steps,
                order,
                [key_order(j.key) for j in batch],
            )

        def result(job: _Job, out: dict[str, Any]) -> EvalResult:
            return EvalResult(
                key=job.key,
                objectives=Objectives(**out["objectives"]),
                node=out["node"],
                hostname=out["hostname"],
                wall_time=float(out["wall_time"]),
                attempts=job.attempts,
                pid=int(out["pid"]),
                batch=int(out["batch"]),
            )

        return self._stream(queue, submit, result, self.batch)

    def breed(self, jobs: deque[BreedJob], variation: VariationConfig) -> Iterator[list[BreedResult]]:
        """``evaluators.Evaluator.breed`` on the actors: ``jobs`` is a live queue (jobs appended while
        iterating are taken too). Each call carries the class keys published since that actor's last call."""
        shapes: dict[str, tuple[int, ...]] = {}
        queue: deque[_Job] = deque()

        def take() -> None:  # move what the caller appended into the pool's queue
            while jobs:
                job = jobs.popleft()
                queue.append(_Job(f"child {job.id}", job))

        def submit(actor: _Actor, batch: list[_Job]) -> Any:
            if not shapes:
                shapes.update(Mask.ones(build_model(self.model_spec, 0)).shapes)
            news, actor.published = self._published[actor.published :], len(self._published)
            return actor.handle.breed_batch.remote(
                [j.payload for j in batch], shapes, [self._data_ref], variation, news
            )

        def result(job: _Job, out: dict[str, Any]) -> BreedResult:
            return breed_result(out, out["node"], out["hostname"], job.attempts, int(out["pid"]))

        return self._stream(queue, submit, result, self.batch, refill=take)

    def publish(self, keys: Iterable[str]) -> None:
        """Class keys the driver knows: each actor receives the new ones with its next ``breed`` call."""
        for key in keys:
            if key not in self._published_set:
                self._published_set.add(key)
                self._published.append(key)

    def class_keys(self, packed: list[bytes], shapes: Mapping[str, tuple[int, ...]]) -> list[str]:
        """``fitness.fitness_key`` of each packed mask, split evenly over the evaluators; computed here when a
        worker is lost meanwhile (a key is a pure function of the mask, so where it is computed is moot)."""
        if not packed:
            return []
        self.warm_up(0)  # take the evaluators that are ready now: never wait on one stuck restarting
        actors = [a for a in self._actors if a.ready]
        shapes = {str(n): tuple(int(d) for d in s) for n, s in shapes.items()}
        if not actors:
            return [self._key_here(p, shapes) for p in packed]
        step = math.ceil(len(packed) / len(actors))
        chunks = [packed[i : i + step] for i in range(0, len(packed), step)]
        refs = [a.handle.class_keys.remote(c, shapes) for a, c in zip(actors, chunks, strict=False)]
        # An actor whose node died may wait to restart for as long as no node has room for it: what has
        # not come back within KEYS_TIMEOUT_S (plus a margin per mask) is keyed here instead.
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=KEYS_TIMEOUT_S + KEY_MARGIN_S * step)
        done = set(ready)
        keys: list[str] = []
        for ref, chunk, actor in zip(refs, chunks, actors, strict=False):
            part = None
            if ref in done:
                try:
                    part = ray.get(ref)
                except WORKER_LOST:
                    part = None
            if part is None:  # lost or stuck: no work for it until it answers ``info`` again
                if actor.ready:
                    self._probe(actor)
                part = [self._key_here(p, shapes) for p in chunk]
            keys += part
        return keys

    def _key_here(self, packed: bytes, shapes: Mapping[str, tuple[int, ...]]) -> str:
        return fitness_key(Mask.unpack(packed, shapes), self.fitness_cfg.mode)

    def _stream(
        self,
        queue: deque[_Job],
        submit: _Submit,
        result: _Result,
        batch_size: int,
        refill: Callable[[], None] | None = None,
    ) -> Iterator[list[Any]]:
        """Run ``queue``'s jobs on the actors, ``submit`` making each call, and yield each finished call's
        results (``result`` of each job and its output). ``refill`` moves the caller's newly appended jobs
        into ``queue`` before each dispatch; the stream ends when nothing is queued or running."""
        refill = refill or (lambda: None)
        refill()
        if not queue:
            return
        self._grow()
        running: dict[Any, tuple[list[_Job], _Actor]] = {}
        stalled_since = None
        try:
            while True:
                refill()
                if not queue and not running:
                    return
                self._dispatch(queue, running, submit, batch_size)
                waiting = [*running, *self._probes, *self._orphans]
                if not waiting:
                    raise EvaluationError("no evaluator is left to run the remaining evaluations")
                timeout = None
                if not running and not self._orphans:  # every evaluator (re)starts or waits for a CPU
                    stalled_since = stalled_since or time.monotonic()
                    timeout = max(0.0, stalled_since + self.ready_timeout - time.monotonic())
                else:
                    stalled_since = None
                ready, _ = ray.wait(waiting, num_returns=1, timeout=timeout)
                if not ready:
                    raise EvaluationError(self._stalled_message())
                ref = ready[0]
                if ref in self._probes:
                    self._settle_probe(ref)
                    continue
                if ref in self._orphans:
                    self._settle_orphan(ref)
                    continue
                # every other call finished by now joins this one's group: one commit for all of them
                done = [ref]
                if len(running) > 1:
                    others = [r for r in running if r != ref]
                    done += ray.wait(others, num_returns=len(others), timeout=0)[0]
                group = []
                for ref in done:
                    jobs, outs = self._collect(ref, running, queue)
                    group += [result(job, out) for job, out in zip(jobs, outs, strict=True)]
                if group:
                    self._replaced = 0
                    self._dispatch(queue, running, submit, batch_size)
                    yield group
        finally:  # abandoned early: remember the calls still running so the actors' counts stay right
            for ref, (_, actor) in running.items():
                self._orphans[ref] = actor

    def _collect(
        self, ref: Any, running: dict[Any, tuple[list[_Job], _Actor]], queue: deque[_Job]
    ) -> tuple[list[_Job], list[dict[str, Any]]]:
        """A finished call's jobs and outputs; a call whose worker was lost puts its jobs back at the head
        of ``queue`` (and returns none), unless one of them has used up its attempts."""
        jobs, actor = running.pop(ref)
        actor.busy -= 1
        try:
            return jobs, ray.get(ref)
        except RayTaskError as e:
            keys = ", ".join(f"'{job.key}'" for job in jobs)
            raise _task_failure(e, f"evaluation of {keys} failed") from None
        except WORKER_LOST as e:
            for job in jobs:
                job.losses.append(_first_line(e))
                if job.attempts >= self.max_attempts:
                    raise EvaluationError(
                        f"evaluation of '{job.key}' lost its worker {job.attempts} times"
                        f" (max_attempts={self.max_attempts}; last: {job.losses[-1]})"
                    ) from e
            queue.extendleft(reversed(jobs))
            if actor.ready:
                self._probe(actor)
            return [], []

    def _dispatch(
        self,
        queue: deque[_Job],
        running: dict[Any, tuple[list[_Job], _Actor]],
        submit: _Submit,
        batch_size: int,
    ) -> None:
        """Hand ready actors calls of up to ``batch_size`` jobs: the queue split evenly over all slots
        (every actor's ``in_flight`` calls), so that the work ends on every evaluator at about the same time."""
        slots = self.in_flight * max(1, len(self._actors))
        for level in range(self.in_flight):  # every ready actor its first call before any its second
            for actor in self._actors:
                if not (queue and actor.ready and actor.busy <= level):
                    continue
                n = max(1, min(batch_size, math.ceil(len(queue) / slots)))
                batch = [queue.popleft() for _ in range(min(n, len(queue)))]
                for job in batch:
                    job.attempts += 1
                running[submit(actor, batch)] = (batch, actor)
                actor.busy += 1

    def warm_up(self, timeout: float | None = None) -> int:
        """Start the evaluators now and wait until each has loaded the data, at most ``timeout`` seconds.

        Returns how many are ready. ``evaluate`` does not need it (it uses each evaluator as soon as it is
        ready); benchmarks and tests use it to measure or exercise the steady state.
        """
        self._grow()
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._probes:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready, _ = ray.wait(list(self._probes), num_returns=1, timeout=left)
            if not ready:
                break
            self._settle_probe(ready[0])
        return sum(a.ready for a in self._actors)

    @property
    def capacity(self) -> int:
        """Masks that keep every evaluator busy: one call of ``batch`` masks each (the pool started). The
        pool queues a second call per evaluator only when more jobs wait than that."""
        self._grow()
        return max(1, len(self._actors)) * self.batch

    @property
    def size(self) -> int:
        """Number of evaluator actors (0 before first use)."""
        return len(self._actors)

    def shutdown(self) -> None:
        """Kill the evaluator actors and free the dataset; a later ``evaluate`` starts afresh. Pending
        ``info`` probes are cancelled first: they retry without end, and a killed actor's would be resubmitted."""
        for probe in self._probes:
            try:
                ray.cancel(probe)
            except Exception:  # already finished or its actor gone
                pass
        for actor in self._actors:
            try:
                ray.kill(actor.handle, no_restart=True)
            except Exception:  # already gone with its node
                pass
        self._actors.clear()
        self._probes.clear()
        self._orphans.clear()
        self._actor_class = self._data_ref = None
        self._replaced = 0

    def __enter__(self) -> EvaluatorPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()


def _task_failure(e: RayTaskError, what: str) -> LotterySearchError:
    """The evaluation itself raised: our own errors keep their one-line message, others are wrapped."""
    cause = getattr(e, "cause", None)
    if isinstance(cause, LotterySearchError):
        return cause
    name = type(cause).__name__ if cause is not None else "error"
    return EvaluationError(f"{what}: {name}: {_first_line(cause) if cause is not None else _first_line(e)}")


@dataclass(eq=False, repr=False)
class RayEvaluator(BaseEvaluator):
    """The Ray actor pool, joined lazily: a local Ray, or the cluster at ``address`` (see ``cluster.connect``)."""

    address: str | None = field(default=None, kw_only=True)
    ray: RayConfig | None = field(default=None, kw_only=True)  # None: ``RayConfig()``

    def __post_init__(self) -> None:
        self.ray = self.ray or RayConfig()
        self._pool: EvaluatorPool | None = None

    def connect(self) -> dict[str, Any]:
        """Join the cluster now (a wrong address fails here with one line); returns its summary."""
        return connect(self.address)

    @property
    def pool(self) -> EvaluatorPool:
        if self._pool is None:
            self.connect()
            self._pool = EvaluatorPool(self.data, self.model_spec, self.fitness, mode=self.mode, ray=self.ray)
        return self._pool

    def evaluate_ready(
        self, jobs: Sequence[Job], steps: int | None = None, order: int = 0
    ) -> Iterator[list[EvalResult]]:
        jobs = list(jobs)
        if not jobs:
            return iter(())
        shapes = jobs[0][1].shapes
        return self.pool.evaluate_ready([(key, mask.pack()) for key, mask in jobs], shapes, steps, order)

    @property
    def capacity(self) -> int:
        """Jobs that keep every evaluator of the pool busy (``EvaluatorPool.capacity``)."""
        return self.pool.capacity

    def class_keys(self, masks: Sequence[Mask]) -> list[str]:
        if not masks:
            return []
        return self.pool.class_keys([m.pack() for m in masks], masks[0].shapes)

    def publish(self, keys: Iterable[str]) -> None:
        self.pool.publish(keys)

    def breed(
        self, jobs: deque[BreedJob], variation: operators.VariationConfig
    ) -> Iterator[list[BreedResult]]:
        return self.pool.breed(jobs, variation)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None


def _remote_call(fn: Callable[..., Any], arrays: list[Any], *args: Any) -> Any:
    return on_one_thread(fn, dataset_from_arrays(ray.get(arrays[0])), *args)


class RayJobs:
    """Jobs as Ray tasks (one CPU each, retried when a worker dies) on the cluster at ``address`` (see
    ``cluster.connect``); the dataset is put once and fetched by each task."""

    def __init__(
        self, fn: Callable[..., Any], data: Dataset, *, address: str | None = None, max_retries: int = 3
    ) -> None:
        connect(address)
        self.fn = fn
        # Every split: unlike fitness, IMP rounds and confirmations read the test accuracy.
        test = {"x_test": data.x_test.detach().cpu().numpy(), "y_test": data.y_test.detach().cpu().numpy()}
        self._data = ray.put(dataset_arrays(data) | test)
        self._task = ray.remote(_remote_call).options(num_cpus=1, max_retries=max_retries)
        self._running: dict[Any, Hashable] = {}

    def submit(self, key: Hashable, *args: Any) -> None:
        self._running[self._task.remote(self.fn, [self._data], *args)] = key

    def next_done(self) -> tuple[Hashable, Any]:
        (ref,), _ = ray.wait(list(self._running), num_returns=1)
        key = self._running.pop(ref)
        try:
            return key, ray.get(ref)
        except ray.exceptions.RayTaskError as e:
            cause = getattr(e, "cause", None)
            if isinstance(cause, LotterySearchError):
                raise cause from None
            raise

    def pending(self) -> int:
        return len(self._running)

    def close(self) -> None:
        for ref in self._running:
            ray.cancel(ref, force=True)
        self._running.clear()
