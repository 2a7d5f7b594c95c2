"""Shared fixtures: the synthetic dataset, one local Ray per test session, and real multi-node clusters
started with `ray start`.

``synthetic``: the synthetic dataset with validation split 0 (``load_dataset("synthetic", 0)``), loaded once
per session. ``Dataset`` is frozen; tests must not write into its tensors.

``ray_local``: ``ray.init`` costs ~3 s and ~1.4 GB here, so every test that needs Ray shares one local
instance (2 CPUs, no dashboard), started by the first such test and shut down at the end of the session.
Code under test calls ``cluster.connect()``, which reuses it; its ``disconnect()`` leaves it running because
``connect`` did not start it.

``ray_nodes``: a ``RayNodes`` to start a head and more nodes on this machine with the real ``ray start``, as a
user would; everything it started is stopped at teardown, even when the test fails.

Plain helpers, imported by name, live beside this file: ``helpers`` (the tiny search config, a hand-checked set
of objectives) and ``masktools`` (small random masks).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Self

import pytest
import torch

RAY_TEST_CPUS = 2
OBJECT_STORE_BYTES = 200 * 2**20  # small: the machine is shared


@pytest.fixture(scope="session")
def synthetic():
    """The synthetic dataset (split seed 0), shared by every test that trains on it."""
    from lotterysearch.core.data import load_dataset

    return load_dataset("synthetic", 0)


@pytest.fixture(scope="session")
def ray_local() -> Iterator[dict[str, Any]]:
    """The session's local Ray; yields ``cluster.cluster_summary()``."""
    import ray

    from lotterysearch.execution.cluster import cluster_summary

    if ray.is_initialized():  # someone else's Ray: use it, leave it
        yield cluster_summary()
        return
    ray.init(
        address="local",  # never join a cluster that `ray start` left on this machine
        num_cpus=RAY_TEST_CPUS,
        include_dashboard=False,
        log_to_driver=False,
        object_store_memory=OBJECT_STORE_BYTES,
    )
    try:
        yield cluster_summary()
    finally:
        ray.shutdown()


# ---- real `ray start` nodes ------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def session_pids(sid: int) -> list[int]:
    """Live (non-zombie) processes of session ``sid``, read from /proc."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:  # exited meanwhile
            continue
        fields = stat.rsplit(")", 1)[1].split()  # state ppid pgrp session ...
        if fields[0] != "Z" and int(fields[3]) == sid:
            pids.append(int(entry))
    return pids


def _exited(pid: int) -> bool:
    """Whether our child ``pid`` has exited, without reaping it (its id stays reserved)."""
    return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None


class RayNodes:
    """Ray nodes started with ``ray start --block``, each with its own temp dir and ports.

    Each ``ray start`` runs in a new session, and every process of its node (GCS, raylet, agents, and the
    workers, which Ray puts in process groups of their own) keeps that session id: ``stop`` and ``kill``
    find exactly this node's processes in /proc. The ``ray start`` process is reaped only after its session
    is empty, so the id cannot be reused meanwhile. Never ``ray stop``: it ends every Ray on the machine.

    Token authentication (Ray's default) with a fresh token of our own: ``env`` carries ``RAY_AUTH_MODE=token``
    and ``RAY_AUTH_TOKEN_PATH`` for the nodes and for any driver that joins them; ``ray start --address`` and
    ``ray.init(address=...)`` never turn token mode on by themselves.
    """

    def __init__(self) -> None:
        # A short root: Ray's Unix sockets live under it and their paths may not exceed 107 bytes.
        self.root = Path(tempfile.mkdtemp(prefix="lsray-", dir="/tmp"))
        token = self.root / "auth_token"
        token.write_text(secrets.token_hex(32))
        self.env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token)}
        self.env.pop("RAY_ADDRESS", None)
        self.address: str | None = None
        self.procs: dict[str, subprocess.Popen] = {}
        ray_exe = Path(sys.executable).parent / "ray"
        self.ray = str(ray_exe) if ray_exe.exists() else (shutil.which("ray") or "ray")

    def start_head(self, num_cpus: int = 1, *extra: str) -> str:
        """Start the head node; returns its address ``127.0.0.1:PORT``."""
        port = free_port()
        args = [
            "--head",
            f"--port={port}",
            "--include-dashboard=false",
            f"--dashboard-port={free_port()}",
            f"--ray-client-server-port={free_port()}",
        ]
        self._start("head", num_cpus, [*args, *extra])
        self.address = f"127.0.0.1:{port}"
        return self.address

    def add_node(self, name: str, num_cpus: int = 1, *extra: str) -> None:
        """Start a node that joins the head."""
        assert self.address, "start_head first"
        self._start(name, num_cpus, [f"--address={self.address}", *extra])

    def _start(self, name: str, num_cpus: int, args: list[str], timeout: float = 120.0) -> None:
        log = self.root / f"{name}.log"
        cmd = [
            self.ray,
            "start",
            *args,
            f"--num-cpus={num_cpus}",
            f"--temp-dir={self.root / name}",
            f"--dashboard-agent-listen-port={free_port()}",  # default 52365 would clash between nodes
            f"--object-store-memory={OBJECT_STORE_BYTES}",
            "--disable-usage-stats",
            "--block",
        ]
        with open(log, "w") as out:
            proc = subprocess.Popen(
                cmd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.procs[name] = proc
        deadline = time.monotonic() + timeout
        while "Ray runtime started" not in log.read_text():
            if _exited(proc.pid) or time.monotonic() > deadline:
                raise RuntimeError(f"`ray start` of node '{name}' failed:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)

    def kill(self, name: str) -> None:
        """Abrupt loss of a node: SIGKILL every process of it (reaped later by ``stop``)."""
        for pid in session_pids(self.procs[name].pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def stop(self, name: str, grace: float = 10.0) -> None:
        """SIGTERM the node's ``ray start`` (it shuts its processes down), SIGKILL what is left after grace."""
        proc = self.procs.pop(name)
        try:
            if not _exited(proc.pid):
                os.kill(proc.pid, signal.SIGTERM)
            deadline = time.monotonic() + grace
            while session_pids(proc.pid) and time.monotonic() < deadline:
                time.sleep(0.2)
            for pid in session_pids(proc.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        finally:
            proc.wait(timeout=30)

    def stop_all(self) -> None:
        try:
            for name in reversed(list(self.procs)):
                self.stop(name)
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        """Every node stopped however the test ended: a stray Ray would hold this machine's CPUs."""
        self.stop_all()


@pytest.fixture
def ray_nodes() -> Iterator[RayNodes]:
    with RayNodes() as nodes:
        yield nodes


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Torch on one thread while a test trains: tiny networks train ~10x faster so when other jobs share the
    cores, and a convolution's sums (so its bits) depend on the thread count."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
