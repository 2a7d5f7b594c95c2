"""Deploying on a Ray cluster: docker/ agrees with pyproject.toml, and Ray Jobs runs a search on real nodes.

No Docker engine runs on CI machines, so the image and the compose file are checked as text. The cluster test
starts the nodes as docker/compose.yaml does (``ray start --head`` with the dashboard, ``ray start --address``,
token authentication with the token in ``RAY_AUTH_TOKEN``), on loopback, each with its own temp dir and
ports, and drives them with the ``ray job`` CLI as docs/cluster.md tells a user to.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from conftest import RayNodes, free_port
from helpers import tiny_toml

from lotterysearch.errors import StoreError
from lotterysearch.storage.store import Store

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "docker" / "Dockerfile"
COMPOSE = ROOT / "docker" / "compose.yaml"


# ---- the image and the compose file, as text ------------------------------------------------------
def pins() -> dict[str, str]:
    """``ray`` and ``torch`` versions pinned by pyproject.toml, and the Python tag of Ray's images."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    out = {}
    for dep in project["dependencies"]:
        m = re.fullmatch(r"(ray|torch)==([\d.]+)", dep)
        if m:
            out[m.group(1)] = m.group(2)
    lo, hi = re.fullmatch(r">=3\.(\d+),<3\.(\d+)", project["requires-python"]).groups()
    assert int(hi) == int(lo) + 1, "requires-python must name one minor version, as Ray's image tags do"
    out["python"] = f"py3{lo}"
    assert project["optional-dependencies"]["cluster"] == [f"ray[default]=={out['ray']}"]
    return out


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n(\s*#.*\n)*", " ", DOCKERFILE.read_text())
    lines = [ln.strip() for ln in text.splitlines()]
    return [tuple(ln.split(None, 1)) for ln in lines if ln and not ln.startswith("#")]  # type: ignore[misc]


def base_image(**build_args: str) -> str:
    """The FROM image with the global ARG defaults (before FROM) and ``build_args`` substituted."""
    args: dict[str, str] = {}
    for op, rest in dockerfile_instructions():
        if op == "FROM":
            values = {**args, **build_args}
            return re.sub(r"\$\{(\w+)\}", lambda m, v=values: v[m.group(1)], rest)
        if op == "ARG" and "=" in rest:
            name, value = rest.split("=", 1)
            args[name] = value.strip('"')
    raise AssertionError("no FROM in docker/Dockerfile")


def interpolate(value: str, env: dict[str, str] | None = None) -> str:
    """Compose's ``${VAR}``, ``${VAR:-default}`` and ``${VAR:?message}`` with ``env`` (empty by default)."""
    env = env or {}

    def one(m: re.Match) -> str:
        name, op, arg = m.groups()
        if env.get(name):
            return env[name]
        if op == "-":
            return arg
        raise KeyError(f"{name} is required: {arg}")

    return re.sub(r"\$\{(\w+)(?::([-?])([^}]*))?\}", one, value)


def size_bytes(text: str) -> int:
    """Docker's sizes (``shm_size: 2gb``): binary units."""
    number, unit = re.fullmatch(r"(\d+)\s*([kmg]?)b?", str(text).lower()).groups()
    return int(number) * 1024 ** "_kmg".index(unit or "_")


def test_the_image_is_rays_own_for_the_pinned_ray_and_python():
    p = pins()
    assert base_image() == f"rayproject/ray:{p['ray']}-{p['python']}-cpu"
    assert base_image(FLAVOR="gpu") == f"rayproject/ray:{p['ray']}-{p['python']}-gpu"
    steps = dockerfile_instructions()
    args = dict(rest.split("=", 1) for op, rest in steps if op == "ARG" and "=" in rest)
    assert args["TORCH_VERSION"] == p["torch"]
    env = " ".join(rest for op, rest in steps if op == "ENV")
    assert "LOTTERYSEARCH_CACHE=/opt/lotterysearch/cache" in env  # where the build generates MNIST-1D
    assert any(op == "RUN" and "load_dataset('mnist1d')" in rest for op, rest in steps)
    assert any(
        op == "RUN" and "[cluster,digits,dashboard]" in rest for op, rest in steps
    )  # compose's dashboard
    # No token in the image: nothing about it in any instruction, and the context holds only the package.
    assert not [rest for op, rest in steps if "AUTH_TOKEN" in rest]
    copied = {src.rstrip("/") for op, rest in steps if op == "COPY" for src in rest.split()[:-1]}
    copied = {c for c in copied if not c.startswith("--")}
    ignore = [ln.strip() for ln in (ROOT / ".dockerignore").read_text().splitlines()]
    ignore = [ln for ln in ignore if ln and not ln.startswith("#")]
    assert ignore[0] == "*"
    assert (
        {ln[1:].rstrip("/") for ln in ignore if ln.startswith("!")}
        == copied
        == {
            "pyproject.toml",
            "README.md",
            "lotterysearch",
        }
    )


def test_compose_runs_that_image_with_shared_memory_auth_and_a_workspace_volume():
    p = pins()
    compose = yaml.safe_load(COMPOSE.read_text())
    services = compose["services"]
    assert set(services) == {"head", "worker", "dashboard"}
    env = dict(
        re.match(r"ENV (\w+)=(\S+)", f"ENV {kv}").groups()
        for op, rest in dockerfile_instructions()
        if op == "ENV"
        for kv in rest.split()
    )
    for name, svc in services.items():
        assert interpolate(svc["image"]) == f"lotterysearch:ray{p['ray']}-cpu", name
        if name == "dashboard":  # not a Ray node (test_compose_runs_the_dashboard_beside_the_store)
            assert svc["build"] == services["head"]["build"]
            continue
        assert interpolate(svc["image"], {"FLAVOR": "gpu"}) == f"lotterysearch:ray{p['ray']}-gpu", name
        build = svc["build"]
        assert (COMPOSE.parent / build["context"]).resolve() == ROOT
        assert build["dockerfile"] == "docker/Dockerfile"
        assert build["args"]["RAY_VERSION"] == p["ray"]
        assert base_image(FLAVOR=interpolate(build["args"]["FLAVOR"])) == base_image()
        # Ray needs /dev/shm larger than its object store, else it falls back to /tmp.
        command = shlex.split(interpolate(svc["command"]))
        store = int(next(a for a in command if a.startswith("--object-store-memory=")).split("=")[1])
        assert size_bytes(svc["shm_size"]) > store >= 100 * 2**20, name
        # Token authentication on every node, the token given at run time (required, no default).
        assert svc["environment"]["RAY_AUTH_MODE"] == "token"
        token = svc["environment"]["RAY_AUTH_TOKEN"]
        assert re.fullmatch(r"\$\{RAY_AUTH_TOKEN:\?[^}]+\}", token), token
        with pytest.raises(KeyError, match="RAY_AUTH_TOKEN is required"):
            interpolate(token)
        assert command[:2] == ["ray", "start"] and "--block" in command

    head = shlex.split(interpolate(services["head"]["command"]))
    assert {"--head", "--port=6379", "--dashboard-host=0.0.0.0", "--dashboard-port=8265"} <= set(head)
    assert services["head"]["ports"] == ["127.0.0.1:8265:8265"]  # the dashboard on the host's loopback only
    assert services["head"]["volumes"] == [f"workspace:{env['LOTTERYSEARCH_WORKSPACE']}"]
    assert "workspace" in compose["volumes"]
    worker = shlex.split(interpolate(services["worker"]["command"]))
    assert "--address=head:6379" in worker
    assert services["worker"]["depends_on"]["head"]["condition"] == "service_healthy"


def test_compose_runs_the_dashboard_beside_the_store_on_loopback_with_a_token():
    from lotterysearch.cli import build_parser
    from lotterysearch.readers.dashboard.server import TOKEN_ENV, check_bind

    compose = yaml.safe_load(COMPOSE.read_text())
    head, dash = compose["services"]["head"], compose["services"]["dashboard"]
    assert dash["volumes"] == head["volumes"]  # the store the head's job drivers write
    assert dash["ports"] == ["127.0.0.1:8000:8000"]  # published on the host's loopback only
    command = shlex.split(interpolate(dash["command"]))
    args = build_parser().parse_args(command[1:])
    assert command[0] == "lotterysearch" and args.command == "dashboard"
    assert (args.workspace, args.host, args.port) == ("/workspace", "0.0.0.0", 8000)
    # Listening on every interface of its container, it requires a token; compose insists on one at start.
    assert set(dash["environment"]) == {TOKEN_ENV}  # and it gets no Ray token: it never joins the cluster
    with pytest.raises(KeyError, match=f"{TOKEN_ENV} is required"):
        interpolate(dash["environment"][TOKEN_ENV])
    token = interpolate(dash["environment"][TOKEN_ENV], {TOKEN_ENV: "0" * 32})
    assert check_bind(args.host, token) == token


def test_the_dashboard_command_serves_with_its_token_and_refuses_without(tmp_path):
    """``lotterysearch dashboard`` as the compose service runs it (every interface, token from the
    environment), over a real workspace, asked over loopback as the host's published port is."""
    import urllib.error
    import urllib.request

    from conftest import free_port

    from lotterysearch.readers.dashboard.server import TOKEN_ENV

    with Store.open(tmp_path, create=True) as store:
        run_id = store.create_run("dash", "", "{}", "h", 0, (0.0, 1.0), {"fc1": (2, 3)})
    port, token = free_port(), "t" * 32
    cmd = [str(Path(sys.executable).parent / "lotterysearch"), "dashboard", "--workspace", str(tmp_path)]
    no_token = subprocess.run(
        [*cmd, "--host", "0.0.0.0"],
        env={**os.environ, TOKEN_ENV: ""},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert no_token.returncode == 2 and no_token.stderr.startswith(
        "lotterysearch: error: binding the dashboard"
    )
    server = subprocess.Popen(
        [*cmd, "--host", "0.0.0.0", "--port", str(port)],
        env={**os.environ, TOKEN_ENV: token},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert server.stdout.readline().strip() == (
            f"dashboard of workspace {tmp_path} at http://0.0.0.0:{port}/ (token required)"
        )
        url = f"http://127.0.0.1:{port}/api/runs"
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(url, timeout=30)
        assert refused.value.code == 401
        request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(request, timeout=30) as answer:
            runs = json.loads(answer.read())["runs"]
        assert [r["id"] for r in runs] == [run_id]
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_compose_helpers_read_docker_syntax():
    assert interpolate("a${X:-1}b${Y}", {"Y": "2"}) == "a1b2"
    assert interpolate("${X:-1}", {"X": "3"}) == "3"
    assert [size_bytes(s) for s in ("64m", "2gb", "512mb", "1024")] == [64 * 2**20, 2 * 2**30, 2**29, 1024]


# ---- Ray Jobs on a real two-node cluster ---------------------------------------------------------
GENERATIONS = 10
POPULATION = 8
# ~0.3-0.8 s per evaluation here, ~35 s for the search: on 2 busy cores the worker node's evaluator needs
# 10-25 s to start (a fresh process importing torch), and the search must outlast that with generations left.
TINY = tiny_toml(
    name="deploy",
    dataset="synthetic",
    model="mlp:16-12-12-4",
    seeding={"iterations": 10},
    ga={"population": POPULATION, "generations": GENERATIONS},
    fitness={"steps": 200},
    ray={"num_evaluators": 2},
)


class JobCluster(RayNodes):
    """``RayNodes`` set up as docker/compose.yaml sets up its containers.

    The head serves the dashboard (the Jobs API) on its own free port; the token travels in
    ``RAY_AUTH_TOKEN`` (compose's setting) instead of a token file; ``lotterysearch`` is on the nodes' PATH,
    as in the image, since a job's entrypoint is a shell command run on the head.
    """

    def __init__(self) -> None:
        super().__init__()
        token_file = Path(self.env.pop("RAY_AUTH_TOKEN_PATH"))
        self.env["RAY_AUTH_TOKEN"] = token_file.read_text()
        token_file.unlink()
        bin_dir = Path(sys.executable).parent
        assert (bin_dir / "lotterysearch").exists(), "pip install -e . puts `lotterysearch` next to python"
        self.env["PATH"] = f"{bin_dir}:{self.env.get('PATH', '')}"
        self.dashboard = ""
        self.job_markers: list[str] = []  # a string unique to each job's command line

    def job_processes(self) -> list[int]:
        """Live processes whose command line holds a job marker: a job's driver, or our `ray job` client."""
        pids = []
        for entry in os.listdir("/proc"):
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            except (OSError, UnicodeDecodeError):  # not a process, or exited meanwhile
                continue
            if entry.isdigit() and int(entry) != os.getpid() and any(m in cmdline for m in self.job_markers):
                pids.append(int(entry))
        return pids

    def stop_all(self) -> None:
        """Stop the nodes, then what is left of our jobs. Ray starts a job's driver in a session of its own
        (so ``stop`` does not see it) and kills it only 1-3 s after the head is gone."""
        try:
            super().stop_all()
        finally:
            deadline = time.monotonic() + 30
            while self.job_markers and (pids := self.job_processes()) and time.monotonic() < deadline:
                for pid in pids:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                time.sleep(0.1)

    def start_head(self, num_cpus: int = 1, *extra: str) -> str:
        port = free_port()
        # Later flags win: these turn on the dashboard that RayNodes leaves off.
        dashboard = ("--include-dashboard=true", f"--dashboard-port={port}", "--dashboard-host=127.0.0.1")
        address = super().start_head(num_cpus, *dashboard, *extra)
        self.dashboard = f"http://127.0.0.1:{port}"
        return address

    def job(self, *args: str, timeout: float = 120) -> str:
        """``ray job ARGS --address DASHBOARD``; its output, or an assertion error with it."""
        run = subprocess.run(
            [self.ray, "job", *args, "--address", self.dashboard],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert run.returncode == 0, f"ray job {' '.join(args)}:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
        return run.stdout + run.stderr


@pytest.fixture
def job_cluster() -> Iterator[JobCluster]:
    with JobCluster() as cluster:
        yield cluster


def progress(workspace: Path) -> tuple[int, set[str]] | None:
    """(last committed generation, Ray nodes that trained a class) of the search in ``workspace``, if any."""
    try:
        with Store.open(workspace) as store:
            runs = store.runs()
            if not runs:
                return None
            last = store.last_generation(runs[0].id)
            return (-1 if last is None else last.gen), {c.node for c in store.classes(runs[0].id).values()}
    except StoreError:  # not created yet
        return None


@pytest.mark.slow  # ~100 s here: the head with its dashboard ~20 s, the worker ~8 s, the job ~60 s
def test_a_submitted_search_runs_on_both_nodes_and_survives_losing_the_worker(job_cluster, tmp_path):
    job_cluster.start_head(num_cpus=1)
    job_cluster.add_node("worker", num_cpus=1)
    workdir, workspace = tmp_path / "job", tmp_path / "workspace"
    workdir.mkdir()
    (workdir / "tiny.toml").write_text(TINY)
    submission = "deploy-test"
    job_cluster.job_markers.append(str(workspace))
    cmd = ["lotterysearch", "search", "tiny.toml", "--workspace", str(workspace)]
    submit = subprocess.Popen(
        [job_cluster.ray, "job", "submit", "--address", job_cluster.dashboard, "--submission-id", submission]
        + ["--working-dir", str(workdir), "--", *cmd],
        env=job_cluster.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    streamed: list[str] = []
    reader = threading.Thread(target=lambda: streamed.extend(submit.stdout), daemon=True)
    reader.start()
    try:
        # Once both nodes have trained classes, the worker node dies abruptly (every process of it).
        deadline, seen = time.monotonic() + 300, None
        while time.monotonic() < deadline and submit.poll() is None:
            seen = progress(workspace)
            if seen and len(seen[1]) == 2:
                break
            time.sleep(0.25)
        assert seen and len(seen[1]) == 2, f"no evaluation on both nodes:\n{''.join(streamed)[-3000:]}"
        job_cluster.kill("worker")
        gen_at_kill, both_nodes = seen
        submit.wait(timeout=300)
    finally:
        if submit.poll() is None:
            submit.kill()
            submit.wait()
        reader.join(timeout=10)
    out = "".join(streamed)
    assert submit.returncode == 0, out[-4000:]
    assert f"Job '{submission}' succeeded" in out  # `ray job submit` streams the logs and waits

    # The job's logs carry the search's progress lines, one per generation, in order.
    logs = job_cluster.job("logs", submission)
    assert "run deploy-001 in " in logs
    lines = [f"gen {g:>3}/{GENERATIONS}  evaluated" for g in range(GENERATIONS + 1)]
    positions = [logs.find(line) for line in lines]
    assert -1 not in positions and positions == sorted(positions), logs[-3000:]

    # The store in the workspace: finished, and no individual lost with the worker node.
    with Store.open(workspace) as store:
        run = store.run("deploy-001")
        assert run.status == "finished"
        assert store.last_generation(run.id).gen == GENERATIONS
        classes = store.classes(run.id)
        individuals = store.individuals(run.id)
    assert len(individuals) == POPULATION * (GENERATIONS + 1)
    assert all(math.isfinite(i.accuracy) and 0 <= i.accuracy <= 1 for i in individuals)
    assert all(i.class_key in classes for i in individuals)
    assert sum(i.evaluated for i in individuals) == len(classes)  # every class trained exactly once
    assert {c.node for c in classes.values()} == both_nodes
    # Generation gen_at_kill + 1 may have started before the kill; everything after it started later.
    generation = {i.id: i.generation for i in individuals}
    after = {c.node for c in classes.values() if generation[c.individual_id] > gen_at_kill + 1}
    assert len(after) == 1 and after < both_nodes, (gen_at_kill, after, both_nodes)
