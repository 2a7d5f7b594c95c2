"""Ray at the edge: connect, evaluator actors, a pool that retries lost evaluations (real Ray, no mocks).

The in-process tests share the session's local Ray (``ray_local``, 2 CPUs). The multi-node test starts a
real head and worker with ``ray start`` and drives them from a subprocess, since this process already owns
its ``ray.init``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import ray
import torch
from conftest import RayNodes, free_port

from lotterysearch.core.masks import Mask
from lotterysearch.core.models import build_model
from lotterysearch.errors import ConfigError, MaskError
from lotterysearch.execution.cluster import (
    EvaluationError,
    EvaluatorPool,
    check_reachable,
    connect,
    dataset_arrays,
    dataset_from_arrays,
    disconnect,
    parse_address,
)
from lotterysearch.execution.evaluators import EvalResult
from lotterysearch.settings import FitnessConfig, RayConfig
from lotterysearch.training.fitness import evaluate_mask

SPEC = "mlp:16-8-4"
# ~0.5 s per evaluation here: long enough to kill a worker in the middle of one.
CFG = FitnessConfig(steps=100, batch_size=64, init_seeds=(0, 1))
HALF_CPU = RayConfig(num_evaluators=1, cpus_per_eval=0.5)  # leaves the session's other CPU to the rest


@pytest.fixture(scope="module")
def data(synthetic):
    """The session's synthetic dataset (split seed 0, the split TWO_NODE_DRIVER loads too); read only."""
    return synthetic


@pytest.fixture(scope="module")
def shapes():
    return Mask.ones(build_model(SPEC, 0)).shapes


def random_masks(shapes, n: int, seed: int = 0) -> list[Mask]:
    rng = np.random.default_rng(seed)
    return [Mask({k: rng.random(s) < rng.uniform(0.2, 0.9) for k, s in shapes.items()}) for _ in range(n)]


def direct(mask: Mask, data, cfg: FitnessConfig = CFG, mode: str = "forward"):
    """The in-process reference under one torch thread, as inside an evaluator."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return evaluate_mask(mask, SPEC, data, cfg, mode)
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def pool(ray_local, data):
    # Half a CPU each: the two evaluators leave one of the session's 2 CPUs to the other pools here.
    with EvaluatorPool(data, SPEC, CFG, ray=RayConfig(num_evaluators=2, cpus_per_eval=0.5)) as p:
        yield p


# ---- addresses and connect -------------------------------------------------------------------------
def test_parse_address_forms():
    assert parse_address("127.0.0.1:6379") == ("127.0.0.1", 6379)
    assert parse_address("ray://head.example:10001") == ("head.example", 10001)
    assert parse_address("[::1]:6379") == ("::1", 6379)
    for bad in ["head-node", "head:", ":6379", "head:0", "head:65536", "head:port"]:
        with pytest.raises(ConfigError) as e:
            parse_address(bad)
        assert str(e.value) == (
            f"Ray address '{bad}' is not host:port (e.g. 127.0.0.1:6379, the port `ray start --head` printed)"
        )


def test_check_reachable_names_the_address():
    port = free_port()  # nothing listens there
    with pytest.raises(ConfigError) as e:
        check_reachable(f"127.0.0.1:{port}")
    assert str(e.value) == (
        f"cannot reach the Ray cluster at '127.0.0.1:{port}': nothing listens on 127.0.0.1:{port}"
        " (is `ray start --head` running there?)"
    )
    with pytest.raises(ConfigError) as e:
        check_reachable("no-such-host.invalid:6379")
    assert str(e.value) == (
        "cannot reach the Ray cluster at 'no-such-host.invalid:6379': unknown host 'no-such-host.invalid'"
    )


CONNECT_ERRORS = r"""
import json, os, sys
import ray
from lotterysearch.execution.cluster import connect
from lotterysearch.errors import ConfigError

out = {}
cases = {"refused": (sys.argv[1], {}), "malformed": ("head-node", {}), "num_cpus": (sys.argv[1], {"num_cpus": 2})}
for name, (address, kw) in cases.items():
    try:
        connect(address, **kw)
        out[name] = "connected"
    except ConfigError as e:
        out[name] = str(e)
os.environ["RAY_ADDRESS"] = sys.argv[1]
try:
    connect()
    out["env"] = "connected"
except ConfigError as e:
    out["env"] = str(e)
out["initialized"] = ray.is_initialized()
print(json.dumps(out))
"""


def test_connect_to_a_bad_address_is_a_one_line_config_error():
    # A fresh process: this one's Ray would simply be reused.
    address = f"127.0.0.1:{free_port()}"
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    run = subprocess.run(
        [sys.executable, "-c", CONNECT_ERRORS, address], env=env, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr[-2000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    refused = (
        f"cannot reach the Ray cluster at '{address}': nothing listens on {address}"
        " (is `ray start --head` running there?)"
    )
    assert out == {
        "refused": refused,
        "malformed": "Ray address 'head-node' is not host:port (e.g. 127.0.0.1:6379, the port `ray start --head` printed)",
        "num_cpus": f"num_cpus sizes a local Ray only; the cluster at '{address}' has its own CPUs (drop one of the two)",
        "env": refused,
        "initialized": False,
    }


def test_connect_reuses_the_running_ray_and_disconnect_leaves_it(ray_local):
    node = ray.get_runtime_context().get_node_id()
    summary = connect()
    assert summary == ray_local
    assert summary["nodes"] == 1 and summary["cpus"] == 2.0
    assert connect(summary["address"]) == summary  # already initialised: its own address reuses it
    other = f"127.0.0.1:{free_port()}"
    with pytest.raises(ConfigError) as e:  # another address is refused, never silently ignored
        connect(other)
    assert str(e.value) == (
        f"this process is already connected to the Ray cluster at '{summary['address']}'; it cannot also join '{other}'"
    )
    disconnect()  # connect did not start this Ray
    assert ray.is_initialized() and ray.get_runtime_context().get_node_id() == node


# ---- the dataset travels once, as read-only arrays -------------------------------------------------
def test_dataset_round_trip_through_the_object_store(ray_local, data):
    arrays = ray.get(ray.put(dataset_arrays(data)))
    assert not arrays["x_train"].flags.writeable  # why the evaluator copies
    back = dataset_from_arrays(arrays)
    for split in ["x_train", "y_train", "x_val", "y_val"]:
        assert torch.equal(getattr(back, split), getattr(data, split))
    before = float(data.x_train[0, 0])
    back.x_train[0, 0] += 1.0  # a private, writable copy: the session's dataset is not touched
    assert float(data.x_train[0, 0]) == before
    assert back.sizes() == (data.sizes()[0], data.sizes()[1], 0)  # fitness never reads test
    assert (back.name, back.num_classes, back.input_dim) == (data.name, data.num_classes, data.input_dim)


# ---- the pool ------------------------------------------------------------------------------------
def test_results_equal_a_direct_evaluate_mask(pool, data, shapes):
    masks = random_masks(shapes, 3, seed=1)
    results = {r.key: r for r in pool.evaluate([(f"m{i}", m.pack()) for i, m in enumerate(masks)], shapes)}
    assert sorted(results) == ["m0", "m1", "m2"]
    node = ray.get_runtime_context().get_node_id()
    for i, mask in enumerate(masks):
        r = results[f"m{i}"]
        assert isinstance(r, EvalResult)
        assert r.objectives == direct(mask, data)  # same numbers, bit for bit
        assert r.objectives.density == mask.density() and r.objectives.steps == 200
        assert (r.node, r.hostname, r.attempts) == (node, socket.gethostname(), 1)
        assert r.wall_time > 0 and r.pid != os.getpid()


def test_many_jobs_on_two_evaluators_come_back_once_each(pool, shapes):
    masks = random_masks(shapes, 12, seed=2)
    jobs = [(f"job-{i}", m.pack()) for i, m in enumerate(masks)]
    results = list(pool.evaluate(jobs, shapes))
    assert sorted(r.key for r in results) == sorted(k for k, _ in jobs)
    assert len({r.pid for r in results}) == 2  # both evaluators worked
    assert pool.size == 2
    by_key = {r.key: r for r in results}
    assert [by_key[f"job-{i}"].objectives.density for i in range(12)] == [m.density() for m in masks]
    assert list(pool.evaluate([], shapes)) == []


def test_a_killed_worker_costs_a_retry_not_a_result(pool, data, shapes):
    masks = random_masks(shapes, 6, seed=3)
    results, victim_pid = [], None
    for r in pool.evaluate([(f"m{i}", m.pack()) for i, m in enumerate(masks)], shapes):
        results.append(r)
        if victim_pid is None:
            # This evaluator was handed its next job before we got this result: kill it mid-training.
            time.sleep(0.1)
            victim_pid = r.pid
            os.kill(victim_pid, signal.SIGKILL)
    assert sorted(r.key for r in results) == [f"m{i}" for i in range(6)]
    retried = [r for r in results if r.attempts > 1]
    assert retried and all(r.attempts == 2 and r.pid != victim_pid for r in retried)
    for r in retried:
        assert r.objectives == direct(masks[int(r.key[1:])], data)
    # Ray restarts the actor in a new process, and the pool takes it back once it answers.
    survivor = {r.pid for r in results} - {victim_pid}
    deadline, pids = time.monotonic() + 90, set()
    while not pids - survivor - {victim_pid} and time.monotonic() < deadline:
        pids = {r.pid for r in pool.evaluate([(f"again{i}", m.pack()) for i, m in enumerate(masks)], shapes)}
    assert pids - survivor - {victim_pid}, "the killed evaluator never came back"


def test_a_config_the_evaluators_reject_raises_its_own_error(ray_local, data, shapes):
    # a bad training setting cannot reach an evaluator: the config refuses to be made
    with pytest.raises(ConfigError) as e:
        FitnessConfig(steps=1, optimizer="lbfgs")
    assert str(e.value) == "field 'optimizer' must be one of adam, sgd, got 'lbfgs'"
    with EvaluatorPool(data, SPEC, CFG, mode="sideways", ray=HALF_CPU) as p:
        with pytest.raises(MaskError) as e:
            list(p.evaluate([("m", random_masks(shapes, 1)[0].pack())], shapes))
    assert str(e.value) == "unknown masking mode 'sideways' (known: forward, gradient, straight_through)"


def test_the_pool_trains_in_its_mode(ray_local, data, shapes):
    masks = random_masks(shapes, 2, seed=6)
    cfg = CFG.with_steps(20)
    with EvaluatorPool(data, SPEC, cfg, mode="gradient", ray=HALF_CPU) as p:
        results = {r.key: r for r in p.evaluate([(f"m{i}", m.pack()) for i, m in enumerate(masks)], shapes)}
    for i, mask in enumerate(masks):
        got = results[f"m{i}"].objectives
        assert got == direct(mask, data, cfg, "gradient")
        assert got != direct(mask, data, cfg, "forward")  # pruned weights act in gradient mode's forward


def test_a_pool_that_gets_no_cpu_says_so_instead_of_hanging(pool, data, shapes):
    # ``pool`` holds one of the session's 2 CPUs, so an evaluator asking for 2 can never start.
    with EvaluatorPool(
        data, SPEC, CFG, ray=RayConfig(num_evaluators=1, cpus_per_eval=2), ready_timeout=1
    ) as p:
        with pytest.raises(EvaluationError) as e:
            list(p.evaluate([("m", random_masks(shapes, 1)[0].pack())], shapes))
    assert str(e.value) == (
        "no evaluator became ready within 1 s (each needs 2 CPUs, the Ray cluster has 1 free):"
        " are its CPUs taken by other work?"
    )


def test_pool_arguments_are_checked(data):
    # the [ray] settings check themselves: a pool cannot be given bad ones
    for kw, msg in [
        ({"num_evaluators": -1}, "field 'num_evaluators' must be an integer >= 0, got -1"),
        ({"cpus_per_eval": 0}, "field 'cpus_per_eval' must be a number > 0, got 0"),
        ({"gpus_per_eval": -1}, "field 'gpus_per_eval' must be a number >= 0, got -1"),
    ]:
        with pytest.raises(ConfigError) as e:
            RayConfig(**kw)
        assert str(e.value) == msg
    with pytest.raises(ConfigError) as e:
        EvaluatorPool(data, SPEC, CFG, max_attempts=0)
    assert str(e.value) == "max_attempts must be >= 1, got 0"


def test_an_evaluation_too_big_for_any_node_is_refused(ray_local, data, shapes):
    with EvaluatorPool(data, SPEC, CFG, ray=RayConfig(cpus_per_eval=3)) as p:
        with pytest.raises(ConfigError) as e:
            list(p.evaluate([("m", random_masks(shapes, 1)[0].pack())], shapes))
    assert str(e.value) == (
        "each evaluation asks for 3 CPUs but no node of the Ray cluster has that many (largest: 2);"
        " lower cpus_per_eval"
    )
    with EvaluatorPool(data, SPEC, CFG, ray=RayConfig(gpus_per_eval=0.5)) as p:  # this cluster has no GPU
        with pytest.raises(ConfigError) as e:
            list(p.evaluate([("m", random_masks(shapes, 1)[0].pack())], shapes))
    assert str(e.value) == (
        "each evaluation asks for 0.5 GPUs but no node of the Ray cluster has that many (largest: 0);"
        " set gpus_per_eval = 0 to train on CPUs"
    )


# ---- a real two-node cluster -----------------------------------------------------------------------
TWO_NODE_DRIVER = r"""
import json, sys, time
import numpy as np, ray
from lotterysearch.execution.cluster import EvaluatorPool, connect
from lotterysearch.core.data import load_dataset
from lotterysearch.settings import FitnessConfig
from lotterysearch.core.masks import Mask
from lotterysearch.core.models import build_model

def say(**kw):
    print(json.dumps(kw), flush=True)

summary = connect(sys.argv[1])
nodes = [n for n in ray.nodes() if n["Alive"]]
head = [n["NodeID"] for n in nodes if "node:__internal_head__" in n["Resources"]]
say(event="connected", summary=summary, nodes=sorted(n["NodeID"] for n in nodes), head=head[0])
data = load_dataset("synthetic", 0)
shapes = Mask.ones(build_model("mlp:16-8-4", 0)).shapes
rng = np.random.default_rng(0)
masks = [Mask({k: rng.random(s) < 0.6 for k, s in shapes.items()}) for _ in range(8)]
jobs = [(f"m{i}", m.pack()) for i, m in enumerate(masks)]
with EvaluatorPool(data, "mlp:16-8-4", FitnessConfig(steps=150, batch_size=64)) as pool:
    say(event="ready", ready=pool.warm_up(timeout=120))  # else the first actor up may take every job
    # a search's worth of work: how busy each node's evaluator is from the first call to the last result
    many = [Mask({k: rng.random(s) < 0.6 for k, s in shapes.items()}) for _ in range(24)]
    t0, busy = time.perf_counter(), {}
    for r in pool.evaluate([(f"b{i}", m.pack()) for i, m in enumerate(many)], shapes):
        busy[r.node] = busy.get(r.node, 0.0) + r.wall_time
    say(event="busy", span=time.perf_counter() - t0, busy=busy)
    for phase in (1, 2):
        for i, r in enumerate(pool.evaluate(jobs, shapes)):
            say(phase=phase, key=r.key, node=r.node, attempts=r.attempts, objectives=r.objectives.as_dict())
            if phase == 2 and i == 0:
                say(event="kill the worker node now")
    say(event="done", size=pool.size)
"""


@pytest.mark.slow  # ~25-40 s here: two `ray start` nodes take 15-25 s to come up on 2 busy cores
def test_two_node_cluster_spreads_evaluations_and_survives_losing_a_node(ray_nodes: RayNodes):
    address = ray_nodes.start_head(num_cpus=1)
    ray_nodes.add_node("worker", num_cpus=1)
    err = open(ray_nodes.root / "driver.err", "w")
    driver = subprocess.Popen(
        [sys.executable, "-c", TWO_NODE_DRIVER, address],
        env=ray_nodes.env,
        stdout=subprocess.PIPE,
        stderr=err,
        text=True,
    )
    watchdog = threading.Timer(300, driver.kill)
    watchdog.start()
    lines = []
    try:
        for line in driver.stdout:
            if not line.startswith("{"):
                continue  # Ray's own messages
            lines.append(json.loads(line))
            if lines[-1].get("event") == "kill the worker node now":
                ray_nodes.kill("worker")
        driver.wait()
    finally:
        watchdog.cancel()
        err.close()
    assert driver.returncode == 0, (ray_nodes.root / "driver.err").read_text()[-3000:]

    connected = lines[0]
    assert connected["summary"]["nodes"] == 2 and connected["summary"]["cpus"] == 2.0
    assert lines[1] == {"event": "ready", "ready": 2}
    # both nodes' evaluators train for most of the span (their wall_time: time inside evaluate_batch)
    busy = lines[2]
    assert busy["event"] == "busy" and set(busy["busy"]) == set(connected["nodes"])
    assert all(seconds / busy["span"] > 0.5 for seconds in busy["busy"].values()), busy
    keys = [f"m{i}" for i in range(8)]
    phase1 = [x for x in lines if x.get("phase") == 1]
    assert sorted(x["key"] for x in phase1) == keys
    assert {x["node"] for x in phase1} == set(connected["nodes"])  # evaluations on both nodes
    assert all(x["attempts"] == 1 for x in phase1)

    phase2 = [x for x in lines if x.get("phase") == 2]
    assert sorted(x["key"] for x in phase2) == keys  # none lost with the worker node
    retried = [x for x in phase2 if x["attempts"] > 1]
    assert retried and {x["node"] for x in retried} == {connected["head"]}
    first = {x["key"]: x["objectives"] for x in phase1}
    assert all(x["objectives"] == first[x["key"]] for x in phase2)  # same numbers on either node
    assert lines[-1] == {"event": "done", "size": 2}


# ---- batches: several masks per call ---------------------------------------------------------------
def test_calls_carry_batches_and_results_do_not_depend_on_the_company(pool, data, shapes):
    """12 jobs over 2 evaluators x 2 calls in flight: calls of 3 masks trained together, each result the
    same bits as the mask trained alone in this process."""
    assert pool.batch == 16  # mlp:16-8-4 is small: batching pays
    masks = random_masks(shapes, 12, seed=4)
    results = {r.key: r for r in pool.evaluate([(f"m{i}", m.pack()) for i, m in enumerate(masks)], shapes)}
    assert max(r.batch for r in results.values()) > 1
    assert sum(r.batch == 1 for r in results.values()) < 12
    for i, mask in enumerate(masks):
        assert results[f"m{i}"].objectives == direct(mask, data)


def test_a_shorter_budget_is_passed_to_the_evaluators(pool, data, shapes):
    masks = random_masks(shapes, 3, seed=5)
    results = {
        r.key: r for r in pool.evaluate([(f"m{i}", m.pack()) for i, m in enumerate(masks)], shapes, 10)
    }
    for i, mask in enumerate(masks):
        assert results[f"m{i}"].objectives == direct(mask, data, CFG.with_steps(10))
        assert results[f"m{i}"].objectives.steps == 20  # 10 steps from each of 2 init seeds


def test_batch_size_of_the_pool(data):
    assert EvaluatorPool(data, "mlp:784-300-100-10", CFG).batch == 1  # LeNet-sized: no batching
    assert EvaluatorPool(data, SPEC, CFG, batch=3).batch == 3
    with pytest.raises(ConfigError) as e:
        EvaluatorPool(data, SPEC, CFG, batch=0)
    assert str(e.value) == "batch must be >= 1 (or None to choose from the network), got 0"


# ---- work off the driver: class keys and children on the evaluators ---------------------------------
def test_class_keys_computed_by_the_evaluators_equal_the_drivers(pool, shapes):
    from lotterysearch.core.canon import class_key

    masks = random_masks(shapes, 7, seed=6)
    masks.append(masks[0].copy())
    assert pool.warm_up(120) == 2  # class keys go to the evaluators ready now: make both ready
    keys = pool.class_keys([m.pack() for m in masks], shapes)
    assert keys == [class_key(m) for m in masks] and keys[0] == keys[-1]
    assert pool.class_keys([], shapes) == []


def test_breed_on_the_actors_skips_the_classes_published_since_each_ones_last_call(pool, shapes):
    from collections import deque

    from lotterysearch.evolution.operators import VariationConfig
    from lotterysearch.execution.evaluators import BreedJob

    mask = random_masks(shapes, 1, seed=7)[0]
    clone = VariationConfig(cx_rate=0.0, mut_rate=0.0)
    jobs = deque(BreedJob(i, (0, 1), (mask.pack(), mask.pack()), seed=i) for i in range(4))
    first = [r for group in pool.breed(jobs, clone) for r in group]
    assert sorted(r.id for r in first) == [0, 1, 2, 3] and len({r.class_key for r in first}) == 1
    assert all(r.objectives is not None and r.packed == mask.pack() for r in first)  # nothing published yet
    pool.publish([first[0].class_key])
    jobs = deque(BreedJob(i, (0, 1), (mask.pack(), mask.pack()), seed=i) for i in range(4, 8))
    again = [r for group in pool.breed(jobs, clone) for r in group]
    assert sorted(r.id for r in again) == [4, 5, 6, 7] and all(r.objectives is None for r in again)
