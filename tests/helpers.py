"""Shared test inputs: the tiny search config on the synthetic dataset, and a hand-checked objective set.

``tiny_config`` is a config a whole search finishes in seconds with (8 individuals, 3 generations of a
16-24-24-4 MLP); ``tiny_toml`` is the same as TOML text, for tests that hand a config file to the CLI.
Overrides are top-level fields (``name="cli"``) or section tables merged into the defaults
(``fitness={"steps": 400}``), and go through the real loader, so a bad override fails as a user's would.
"""

from __future__ import annotations

import copy
import json
import math
import os
import platform
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import lotterysearch as ls
from lotterysearch.cli import main
from lotterysearch.errors import StoreError
from lotterysearch.execution.jobs import on_one_thread
from lotterysearch.runs import confirmation
from lotterysearch.runs.ledger import run_ledger
from lotterysearch.settings import SearchConfig, parse_config
from lotterysearch.storage.store import Store

TINY: dict[str, Any] = {
    "name": "tiny",
    "dataset": "synthetic",
    "model": "mlp:16-24-24-4",
    "seed": 3,
    "seeding": {"init_seeds": [0, 1], "compressions": [3, 10], "random_share": 0.25, "iterations": 20},
    "ga": {"population": 8, "generations": 3},
    "fitness": {"steps": 30},
    "ray": {"num_evaluators": 2},
}

# What the IMP and CS run tests' configs share: a run of the tiny MLP on the synthetic data, in this process.
TRAJECTORY_RUN: dict[str, Any] = {
    "name": "t",
    "dataset": "synthetic",
    "model": "mlp:16-24-24-4",  # 384 + 576 + 96 = 1056 prunable weights
    "seed": 3,
    "evaluator": "local",
}

# A line Ray's log monitor printed on the driver's stdout for a worker or the raylet ("(raylet) ...",
# "(EvaluatorActor pid=12) ...", coloured or not): it comes from any actor of the session's shared Ray,
# so a test reading what one command printed leaves it out.
_RAY_LOG_LINE = re.compile(r"^(\x1b\[[0-9;]*m)?\((raylet|pid=\d+|\w+ pid=\d+)[^)]*\)")


def raises_exactly(kind: type[BaseException], message: str) -> Any:
    """``pytest.raises`` that also checks the message to the letter: the one line a user reads."""
    return pytest.raises(kind, match=f"^{re.escape(message)}\\Z")


def printed_lines(text: str) -> list[str]:
    """The lines a command printed, without those Ray's log monitor interleaved from other workers."""
    return [line for line in text.splitlines() if not _RAY_LOG_LINE.match(line)]


def toml_scalar(v: Any) -> str:
    """TOML for a value, including what JSON cannot say (inf, nan), so bad values reach the loader as typed."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and not math.isfinite(v):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")
    if isinstance(v, list | tuple):
        return "[" + ", ".join(toml_scalar(x) for x in v) + "]"
    return json.dumps(v)


def toml_of(table: dict[str, Any], **overrides: Any) -> str:
    """``table`` with ``overrides`` (as ``overridden`` applies them) as TOML text: its scalars at the top,
    then one ``[section]`` per dict value."""
    table = overridden(table, **overrides)
    top = [f"{k} = {toml_scalar(v)}" for k, v in table.items() if not isinstance(v, dict)]
    sections = [
        f"[{k}]\n" + "".join(f"{kk} = {toml_scalar(vv)}\n" for kk, vv in v.items())
        for k, v in table.items()
        if isinstance(v, dict)
    ]
    return "\n".join(top) + "\n" + "".join(sections)


def overridden(base: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    """A copy of ``base`` with ``overrides``: a dict merges into its section, None drops, anything else replaces."""
    table = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, dict):
            table.setdefault(key, {}).update(value)
        elif value is None:
            table.pop(key, None)
        else:
            table[key] = value
    return table


def tiny_toml(**overrides: Any) -> str:
    """The tiny config as TOML, with ``overrides`` as ``overridden`` applies them."""
    return toml_of(TINY, **overrides)


def tiny_config(**overrides: Any) -> SearchConfig:
    """The tiny config, loaded (and validated) as ``load_config`` loads a file."""
    return parse_config(tiny_toml(**overrides), "<tiny config>")


# A stability study small enough for a test: three inits of a tiny MLP on synthetic data, two pruners.
TINY_STABILITY: dict[str, Any] = {
    "name": "tiny",
    "dataset": "synthetic",
    "model": "mlp:16-24-12-4",
    "init_seeds": [0, 1, 2],
    "pruning": {"pruners": ["synflow", "random"], "compressions": [4, 20]},
    "training": {"steps": 20, "compressions": [4], "permuted_copies": 2},
    "rounding": {"seeds": [0, 1], "compression": 20, "iterations": 10},
}


def tiny_stability_toml(**overrides: Any) -> str:
    """The tiny stability study as TOML, with ``overrides`` as ``overridden`` applies them."""
    return toml_of(TINY_STABILITY, **overrides)


# (accuracy ↑, density ↓). F1 = {0, 1, 2}; F2 = {3, 5, 6, 7}; F3 = {4}.
POINTS = [
    (0.90, 0.50),
    (0.80, 0.20),
    (0.70, 0.10),
    (0.85, 0.60),
    (0.60, 0.30),
    (0.65, 0.25),
    (0.75, 0.40),
    (0.72, 0.35),
]


def brute_front(objs) -> list[int]:
    """Indices of the non-dominated points, straight from the definition."""

    def dominates(p, q):
        return p[0] >= q[0] and p[1] <= q[1] and p != q

    return [i for i, q in enumerate(objs) if not any(dominates(p, q) for p in objs)]


def start_driver(*argv: str) -> subprocess.Popen:
    """``lotterysearch *argv`` as a subprocess in a session of its own (so ``sigkill`` reaches its Ray workers
    too), its output unbuffered and piped, for the tests that kill a driver mid-run and resume."""
    return subprocess.Popen(
        [sys.executable, "-m", "lotterysearch.cli", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        start_new_session=True,
    )


def assert_running(driver: subprocess.Popen) -> None:
    """Fail with the output of a ``start_driver`` driver that has exited before the test could kill it."""
    if driver.poll() is not None:
        raise AssertionError(f"driver exited early: {driver.stdout.read().decode()[-2000:]}")


def sigkill(driver: subprocess.Popen) -> None:
    """SIGKILL a driver started in a session of its own (``start_new_session=True``), with every process it
    started (its Ray workers), and reap it: the crash the resume tests recover from. A driver already reaped
    is left alone (its pid may belong to another process by now)."""
    if driver.returncode is None:
        try:
            os.killpg(driver.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    driver.wait(30)


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``predicate`` until it holds: the tests that SIGKILL a driver wait for a state on disk (a committed
    round or generation) that no event announces. Fails after ``timeout`` seconds, naming ``what``."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def tickets(workspace: Path, run_id: str) -> dict:
    """Everything an IMP or CS run computed, without timestamps: its individuals, its rounds and its ledger
    (whose wall time is what the trainings took this time, so left out): what a resumed run must equal."""
    with Store.open(workspace) as store:
        inds = [
            (i.id, i.generation, i.packed, i.parents, i.origin, i.class_key, i.accuracy, i.density, i.steps)
            for i in store.individuals(run_id)
        ]
        rounds = [
            (r.trajectory, r.round, r.individual_id, r.result, r.pruned) for r in store.imp_rounds(run_id)
        ]
        ledger = run_ledger(store, run_id)
        return {
            "individuals": inds,
            "rounds": rounds,
            "status": store.run(run_id).status,
            "ledger": (ledger.total_steps, ledger.critical_path_steps, ledger.flops),
        }


def confirm_tickets(ws: Path, reference: dict, last_round: int) -> tuple[dict, dict]:
    """Confirm run t-001's tickets of ``last_round`` from their own init and from init 1000, checking what an
    IMP or CS run promises: the first ticket's own-init job, trained as jobs train, repeats its round bit for
    bit (so the plan takes it from the round), its stored confirmation is the round's numbers and the reinit
    control another training. Returns the summaries, and the stored confirmations by (individual, init)."""
    last = [r for r in reference["rounds"] if r[1] == last_round]
    ids = [r[2] for r in last]
    with Store.open(ws) as store:
        p = confirmation.plan(store, "t-001", ids=ids[:1], reinit_seeds=[1000])
        data = confirmation.run_inits(store, "t-001").data()
    (own,) = [j for j in p.jobs if j.init.init == "own"]
    assert own.key in p.from_rounds and own.init.seed == 0  # trajectory 0's init
    assert on_one_thread(confirmation.train_job, data, own) == p.from_rounds[own.key]
    summaries = ls.confirm(ws, "t-001", ids=ids, reinit_seeds=[1000], local=True)
    assert list(summaries) == ids
    with ls.open_run(ws, "t-001") as run:
        done = {(c.individual_id, c.init): c for c in run.confirmations()}
    for _, _, individual_id, result, _ in last:
        assert done[(individual_id, "own")].result.as_dict() == result
        assert done[(individual_id, "reinit")].result.as_dict() != result
    return summaries, done


def kill_and_resume(
    kind: str,
    tmp_path: Path,
    toml: str,
    reference: dict,
    capsys: pytest.CaptureFixture[str],
    *,
    total: int,
    kill_after: int,
) -> None:
    """SIGKILL ``lotterysearch KIND`` (``imp`` or ``cs``, a run of ``total`` rounds) once ``kill_after``
    rounds are committed (SIGSTOP first), a second driver of the live run having been refused before it
    wrote anything;
    ``KIND --resume`` then trains only the rounds left and ends with exactly ``reference``, the ``tickets``
    of an uninterrupted run."""
    config = tmp_path / f"{kind}.toml"
    config.write_text(toml)
    ws = tmp_path / "killed"
    driver = start_driver(kind, str(config), "--workspace", str(ws), "--local")

    def committed_rounds() -> bool:
        assert_running(driver)
        if not (ws / "lotterysearch.sqlite").exists():
            return False
        with Store.open(ws) as store:
            return bool(store.runs()) and len(store.imp_rounds("t-001")) >= kill_after

    try:
        wait_for(committed_rounds, 300, f"{kill_after} committed rounds")
        # stopped, not killed: the driver stays alive (so its lock holds) but commits nothing more while the
        # second driver is refused, however slowly a loaded machine runs that refusal
        os.kill(driver.pid, signal.SIGSTOP)
        with ls.open_run(ws, "t-001") as second, pytest.raises(StoreError) as e:
            second.optimize()
        sigkill(driver)
    finally:
        sigkill(driver)
    assert str(e.value) == (
        f"run 't-001' is being driven by pid {driver.pid} on {platform.node()}; stop that process or wait"
        " for it to end"
    )
    with Store.open(ws) as store:
        assert store.run("t-001").status == "running"  # the driver had no chance to say otherwise
        committed = len(store.imp_rounds("t-001"))
    assert kill_after <= committed < total, "the run finished before the kill: make the rounds longer"
    capsys.readouterr()
    assert main([kind, "--resume", "t-001", str(config), "--workspace", str(ws), "--local"]) == 0
    lines = capsys.readouterr().out.splitlines()
    label = kind.upper()
    assert lines[0] == f"resuming {label} run t-001 in {ws}: {committed} of {total} rounds committed"
    progress = [line for line in lines if line.startswith("seed ")]
    assert len(progress) == total - committed  # nothing committed is trained again
    assert lines[len(progress) + 1].startswith(f"run t-001 (finished): {total} {label} tickets, ")
    assert tickets(ws, "t-001") == reference
