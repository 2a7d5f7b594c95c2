"""Bad input as a new user types it: one line on stderr, exit 2, and nothing recorded in the workspace.

A table of bad configs and arguments runs against one workspace holding one finished run (a real tiny
search in this process); after each, the runs listing must be byte for byte what it was. Most cases call
``lotterysearch.cli.main`` in this process; the ones that need a real pipe or a real SIGKILL start the CLI
as a subprocess: a search whose stdout reader has gone (``| head -1``) must finish, ``front RUN | head``
must end without a traceback, and the evaluators of a SIGKILLed driver must exit within seconds.
"""

from __future__ import annotations

import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import session_pids
from helpers import toml_of

from lotterysearch.cli import main
from lotterysearch.settings import LIMITS, SEED_MAX

BASE: dict[str, Any] = {
    "name": "bad",
    "dataset": "synthetic",
    "model": "mlp:16-12-12-4",
    "seeding": {"init_seeds": [0, 1], "compressions": [3, 10], "random_share": 0.25, "iterations": 10},
    "ga": {"population": 8, "generations": 1},
    "fitness": {"steps": 5},
}
IMP_BASE: dict[str, Any] = {
    "kind": "imp",
    "name": "badimp",
    "dataset": "synthetic",
    "model": "mlp:16-12-12-4",
    "imp": {"init_seeds": [0], "rounds": 2, "rate": 0.5},
    "training": {"steps": 5},
}
ONE_LINE = re.compile(r"^lotterysearch( [a-z]+)?: error: \S.*$")


def toml_text(base: dict[str, Any], section: str | None, key: str, value: Any) -> str:
    """``base`` with ``[section] key = value`` (``section`` None: the top level) as TOML text."""
    return toml_of(base, **({section: {key: value}} if section else {key: value}))


def limit_message(path: str, name: str, value: int) -> str:
    limit = LIMITS[name]
    return (
        f"field '{path}' must be at most {limit.default} ({limit.what}), got {value}; to go higher, set"
        f" {limit.env}={value}"
    )


INF, NAN = math.inf, math.nan
# (section, key, value, what the one line must contain): search configs
SEARCH_CASES: list[tuple[str | None, str, Any, str]] = [
    (None, "name", "a" * 101, "field 'name' must be at most 100 characters, got 'aaaa"),
    (None, "name", "a" * 300, "field 'name' must be at most 100 characters"),
    (None, "name", "", "field 'name' must be letters, digits, - _ ., got ''"),
    (None, "name", "a/b", "field 'name' must be letters, digits, - _ ., got 'a/b'"),
    (None, "name", 5, "field 'name' must be a string, got 5"),
    (None, "dataset", "cifar", "field 'dataset' must be one of mnist1d, mnist, digits, synthetic, cifar10"),
    (None, "model", "resnet:18", "field 'model': unknown model spec 'resnet:18'"),
    (None, "model", "mlp:16-x-4", "field 'model': model spec 'mlp:16-x-4': widths must be integers"),
    (None, "model", "mlp:16-0-4", "field 'model': model spec 'mlp:16-0-4': widths must be >= 1"),
    (
        None,
        "model",
        "mlp:16-100000000-4",
        "field 'model': model spec 'mlp:16-100000000-4' must be at most 100000000 (the limit on a model's"
        " weights and biases), got 2100000004; to go higher, set LOTTERYSEARCH_MAX_PARAMETERS=2100000004",
    ),
    (None, "model", "mlp:30-12-4", "field 'model': mlp:30-12-4 takes 30 inputs, dataset synthetic has 16"),
    (None, "mode", "both", "field 'mode' must be one of forward, gradient, straight_through, got 'both'"),
    (None, "seed", -1, "field 'seed' must be an integer in [0, 2^63 - 1], got -1"),
    (None, "seed", 1.5, "field 'seed' must be an integer, got 1.5"),
    (None, "seed", "0", "field 'seed' must be an integer, got '0'"),
    (None, "evaluator", "gpu", "field 'evaluator' must be one of ray, local, got 'gpu'"),
    (None, "datset", "mnist1d", "unknown field 'datset' in the top level"),
    (None, "kind", "imp", 'is an IMP config (kind = "imp"): run it with `lotterysearch imp`'),
    ("seeding", "pruner", "obd", "field 'seeding.pruner' must be one of synflow"),
    ("seeding", "init_seeds", [], "field 'seeding.init_seeds' must be a non-empty list of integers, got []"),
    ("seeding", "init_seeds", [-1], "field 'seeding.init_seeds' must be an integer in [0, 2^63 - 1], got -1"),
    ("seeding", "init_seeds", list(range(1001)), limit_message("seeding.init_seeds", "seeds", 1001)),
    ("seeding", "init_seeds", 3, "field 'seeding.init_seeds' must be a list of integers, got 3"),
    ("seeding", "compressions", [], "field 'seeding.compressions' must be a non-empty list of numbers >= 1"),
    (
        "seeding",
        "compressions",
        [0.5],
        "field 'seeding.compressions' must be a non-empty list of numbers >= 1",
    ),
    (
        "seeding",
        "compressions",
        [1e300],
        "field 'seeding.compressions' must be at most the model's 384 weights (ρ = 384 keeps one), got [1e+300]",
    ),
    ("seeding", "compressions", [3, 385], "field 'seeding.compressions' must be at most the model's 384"),
    ("seeding", "compressions", [INF], "field 'seeding.compressions' must be a finite number, got inf"),
    ("seeding", "compressions", [NAN], "field 'seeding.compressions' must be a finite number, got nan"),
    ("seeding", "random_share", 1.0, "field 'seeding.random_share' must be in [0, 1), got 1.0"),
    ("seeding", "random_share", -0.1, "field 'seeding.random_share' must be in [0, 1), got -0.1"),
    ("seeding", "random_share", NAN, "field 'seeding.random_share' must be a finite number, got nan"),
    ("seeding", "iterations", 0, "field 'seeding.iterations' must be an integer >= 1, got 0"),
    ("seeding", "iterations", 10**6, limit_message("seeding.iterations", "iterations", 10**6)),
    ("seeding", "iterations", "x", "field 'seeding.iterations' must be an integer, got 'x'"),
    ("ga", "population", 1, "field 'ga.population' must be an integer >= 2, got 1"),
    ("ga", "population", 3, "field 'ga.population' must be at least 4 SynFlow seeds + 1 random controls"),
    ("ga", "population", 10**12, limit_message("ga.population", "population", 10**12)),
    ("ga", "population", 1.5, "field 'ga.population' must be an integer, got 1.5"),
    ("ga", "population", "x", "field 'ga.population' must be an integer, got 'x'"),
    ("ga", "generations", -1, "field 'ga.generations' must be an integer >= 0, got -1"),
    ("ga", "generations", 10**7, limit_message("ga.generations", "generations", 10**7)),
    ("ga", "crossover_rate", 1.5, "field 'ga.crossover_rate' must be in [0, 1], got 1.5"),
    ("ga", "crossover_rate", -0.1, "field 'ga.crossover_rate' must be in [0, 1], got -0.1"),
    ("ga", "crossover_rate", INF, "field 'ga.crossover_rate' must be a finite number, got inf"),
    ("ga", "mutation_rate", 2, "field 'ga.mutation_rate' must be in [0, 1], got 2.0"),
    ("ga", "mutation_rate", NAN, "field 'ga.mutation_rate' must be a finite number, got nan"),
    ("ga", "mutation_strength", 0, "field 'ga.mutation_strength' must be in (0, 1], got 0.0"),
    ("ga", "mutation_strength", 1.5, "field 'ga.mutation_strength' must be in (0, 1], got 1.5"),
    ("ga", "mutation_strength", -INF, "field 'ga.mutation_strength' must be a finite number, got -inf"),
    ("ga", "crossovers", ["zip"], "field 'ga.crossovers' must be one of"),
    ("ga", "mutations", ["flip"], "field 'ga.mutations' must be one of"),
    ("ga", "mode", "async", "field 'ga.mode' must be one of generational, steady_state, got 'async'"),
    ("ga", "align", "yes", "field 'ga.align' must be true or false, got 'yes'"),
    ("ga", "populaton", 8, "unknown field 'ga.populaton' in section [ga]"),
    ("fitness", "steps", 0, "field 'fitness.steps' must be an integer >= 1, got 0"),
    ("fitness", "steps", -5, "field 'fitness.steps' must be an integer >= 1, got -5"),
    ("fitness", "steps", 10**8, limit_message("fitness.steps", "steps", 10**8)),
    ("fitness", "steps", 1.5, "field 'fitness.steps' must be an integer, got 1.5"),
    ("fitness", "lr", 0, "field 'fitness.lr' must be a number > 0, got 0.0"),
    ("fitness", "lr", -1, "field 'fitness.lr' must be a number > 0, got -1.0"),
    ("fitness", "lr", INF, "field 'fitness.lr' must be a finite number, got inf"),
    ("fitness", "lr", NAN, "field 'fitness.lr' must be a finite number, got nan"),
    ("fitness", "lr", "fast", "field 'fitness.lr' must be a number, got 'fast'"),
    ("fitness", "optimizer", "lbfgs", "field 'fitness.optimizer' must be one of adam, sgd, got 'lbfgs'"),
    ("fitness", "batch_size", 0, "field 'fitness.batch_size' must be an integer >= 1, got 0"),
    ("fitness", "batch_size", 10**6, limit_message("fitness.batch_size", "batch_size", 10**6)),
    ("fitness", "eval_every", 1, "field 'fitness.eval_every' must be 0: a mask's fitness is measured after"),
    ("fitness", "init_seeds", [], "field 'fitness.init_seeds' must be a non-empty list of integers, got []"),
    ("fitness", "init_seeds", [-3], "field 'fitness.init_seeds' must be an integer in [0, 2^63 - 1], got -3"),
    ("fitness", "mode", "both", "field 'fitness.mode' must be one of"),
    ("fitness", "halving_rate", 1, "field 'fitness.halving_rate' must be an integer >= 2, got 1"),
    ("fitness", "halving_rate", 10**6, limit_message("fitness.halving_rate", "halving_rate", 10**6)),
    ("fitness", "halving_rungs", 0, "field 'fitness.halving_rungs' must be an integer >= 1, got 0"),
    ("fitness", "halving_rungs", 10**18, limit_message("fitness.halving_rungs", "halving_rungs", 10**18)),
    ("fitness", "fused", True, "field 'fitness.fused' must be false: the fitness trainers have no fused"),
    ("ray", "cpus_per_eval", 0, "field 'ray.cpus_per_eval' must be a number > 0, got 0.0"),
    ("ray", "cpus_per_eval", INF, "field 'ray.cpus_per_eval' must be a finite number, got inf"),
    ("ray", "gpus_per_eval", -1, "field 'ray.gpus_per_eval' must be a number >= 0, got -1.0"),
    ("ray", "gpus_per_eval", NAN, "field 'ray.gpus_per_eval' must be a finite number, got nan"),
    ("ray", "num_evaluators", -1, "field 'ray.num_evaluators' must be an integer >= 0, got -1"),
    ("ray", "num_evaluators", 10**6, limit_message("ray.num_evaluators", "evaluators", 10**6)),
    ("ray", "address", 5, "field 'ray.address' must be a string, got 5"),
]
IMP_CASES: list[tuple[str | None, str, Any, str]] = [
    ("imp", "rounds", 10**4, limit_message("imp.rounds", "rounds", 10**4)),
    ("imp", "rounds", -1, "field 'imp.rounds' must be an integer >= 0, got -1"),
    ("imp", "init_seeds", [-1], "field 'imp.init_seeds' must be an integer in [0, 2^63 - 1], got -1"),
    ("imp", "init_seeds", [0, 0], "field 'imp.init_seeds' must be a non-empty list of distinct integers"),
    ("imp", "rate", 1.5, "field 'imp.rate' must be in (0, 1), got 1.5"),
    ("imp", "rate", NAN, "field 'imp.rate' must be a finite number, got nan"),
    ("training", "lr", INF, "field 'training.lr' must be a finite number, got inf"),
    ("training", "steps", 10**9, limit_message("training.steps", "steps", 10**9)),
    (None, "seed", -2, "field 'seed' must be an integer in [0, 2^63 - 1], got -2"),
    (None, "name", "i" * 101, "field 'name' must be at most 100 characters"),
]

BIG = str(SEED_MAX + 1)
# (argv, what the one line must contain); "{ws}" is the shared workspace, "{tmp}" a scratch directory
# The start of many command lines below: a train that needs no file, an export into the scratch directory,
# a stability study of a config there.
TRAIN = ["train", "--model", "mlp:16-8-4", "--dataset", "synthetic"]
TO_FILE = ["--workspace", "{ws}", "--out", "{tmp}/x.npz"]
STABILITY = ["stability", "{tmp}/s.toml", "--out", "{tmp}/o"]
ARGV_CASES: list[tuple[list[str], str]] = [
    (["prune", "--pruner", "obd"], "unknown pruner 'obd'"),
    (["prune", "--dataset", "cifar"], "unknown dataset 'cifar'"),
    (["prune", "--model", "resnet:18"], "unknown model spec 'resnet:18'"),
    (
        ["prune", "--model", "mlp:40-100000000-10"],
        "model spec 'mlp:40-100000000-10' must be at most 100000000 (the limit on a model's weights and"
        " biases), got 5100000010; to go higher, set LOTTERYSEARCH_MAX_PARAMETERS=5100000010",
    ),
    (["prune", "--compression", "0.5"], "compression must be >= 1"),
    (["prune", "--compression", "inf"], "argument --compression: not a finite number: 'inf'"),
    (["prune", "--compression", "nan"], "argument --compression: not a finite number: 'nan'"),
    (["prune", "--compression", "x"], "argument --compression: not a number: 'x'"),
    (["prune", "--compression", "1e6"], "compression 1e+06 would keep no weight of the 15000"),
    (["prune", "--iterations", "0"], "argument --iterations: a count must be in [1, "),
    (
        ["prune", "--iterations", "100000000000"],
        "--iterations must be at most 100000 (the limit on pruning iterations), got 100000000000",
    ),
    (["prune", "--seed", "-1"], f"argument --seed: a seed must be in [0, {SEED_MAX}], got -1"),
    (["prune", "--seed", BIG], f"argument --seed: a seed must be in [0, {SEED_MAX}], got {BIG}"),
    (["prune", "--seed", "x"], "argument --seed: not an integer: 'x'"),
    (["prune", "--scope", "sideways"], "sideways"),
    (["prune", "--rounding", "up"], "up"),
    (["prune", "--out", "{tmp}"], "--out '{tmp}' is a directory; name a file, e.g. {tmp}/mask.npz"),
    (["prune", "--frobnicate"], "unrecognized arguments: --frobnicate"),
    (["train"], "train needs --mask or --model"),
    (
        [*TRAIN, "--lr", "inf"],
        "field 'lr' must be a finite number, got inf",
    ),
    (
        [*TRAIN, "--lr", "nan"],
        "field 'lr' must be a number > 0, got nan",
    ),
    (
        [*TRAIN, "--lr", "0"],
        "field 'lr' must be a number > 0, got 0.0",
    ),
    (
        [*TRAIN, "--steps", "-1"],
        "field 'steps' must be an integer >= 0, got -1",
    ),
    (
        [*TRAIN, "--steps", "100000000"],
        limit_message("steps", "steps", 10**8),
    ),
    (
        [*TRAIN, "--batch-size", "0"],
        "field 'batch_size' must be an integer >= 1, got 0",
    ),
    (
        [*TRAIN, "--batch-size", "1000000"],
        limit_message("batch_size", "batch_size", 10**6),
    ),
    (
        [*TRAIN, "--optimizer", "lbfgs"],
        "field 'optimizer' must be one of adam, sgd",
    ),
    (
        [*TRAIN, "--mode", "sideways"],
        "unknown masking mode 'sideways'",
    ),
    (
        ["train", "--model", "mlp:16-8-4", "--data-seed", "-1"],
        f"argument --data-seed: a seed must be in [0, {SEED_MAX}], got -1",
    ),
    (
        ["train", "--model", "mlp:16-8-4", "--seed", BIG],
        f"argument --seed: a seed must be in [0, {SEED_MAX}]",
    ),
    (["train", "--mask", "{tmp}/missing.npz"], "mask file '{tmp}/missing.npz' does not exist"),
    (
        ["train", "--model", "mlp:30-10", "--dataset", "synthetic"],
        "model mlp:30-10 takes 30 inputs, dataset synthetic has 16",
    ),
    (["train", "--model", "mlp:16-8-4", "--dataset", "cifar"], "unknown dataset 'cifar'"),
    (["train", "--model", "mlp:16-8-4", "--steps", "x"], "argument --steps: invalid int value: 'x'"),
    (["canon", "{tmp}/a.npz"], "mask file '{tmp}/a.npz' does not exist"),
    (["search", "--workspace", "{ws}"], "search needs a CONFIG file (or --resume RUN)"),
    (
        ["search", "{tmp}/missing.toml", "--workspace", "{ws}"],
        "config file '{tmp}/missing.toml' does not exist",
    ),
    (["search", "{tmp}", "--workspace", "{ws}"], "config file '{tmp}' does not exist"),
    (["search", "--resume", "zzz-001", "--workspace", "{ws}"], "unknown run 'zzz-001'"),
    (
        ["search", "--resume", "ok-001", "--workspace", "{ws}"],
        "run 'ok-001' has already finished; nothing to resume",
    ),
    (["imp", "--workspace", "{ws}"], "imp needs a CONFIG file (or --resume RUN)"),
    (["imp", "--resume", "ok-001", "--workspace", "{ws}"], "run 'ok-001' is a search, not an IMP run"),
    (["runs", "--workspace", "{ws}", "--format", "xml"], "xml"),
    (["runs", "--workspace", "{tmp}/nowhere"], "no lotterysearch workspace at '{tmp}/nowhere'"),
    (["front", "zzz-001", "--workspace", "{ws}"], "unknown run 'zzz-001'"),
    (["frontier", "--workspace", "{ws}"], "the frontier needs at least one density"),
    (["frontier", "--workspace", "{ws}", "--density", "1.5"], "a share of the weights in (0, 1], got 1.5"),
    (["frontier", "--workspace", "{ws}", "--density", "0.5", "--tolerance", "-1"], "--tolerance must be"),
    (["frontier", "zzz-001", "--workspace", "{ws}", "--density", "0.5"], "unknown run 'zzz-001'"),
    (["frontier", "ok-001", "--workspace", "{ws}", "--density", "0.5"], "no confirmed mask"),
    (["frontier", "--workspace", "{ws}", "--density", "0.5", "--format", "xml"], "xml"),
    (["front", "ok-001", "--workspace", "{ws}", "--format", "xml"], "xml"),
    (["front", "ok-001", "--workspace", "{ws}", "--overlay", "ok-001"], "--overlay draws on the plot"),
    (
        ["export", "ok-001", BIG, *TO_FILE],
        f"argument ID: an individual id must be in [0, {SEED_MAX}], got {BIG}",
    ),
    (
        ["export", "ok-001", "-1", *TO_FILE],
        "argument ID: an individual id must be in [0, ",
    ),
    (
        ["export", "ok-001", "x", *TO_FILE],
        "argument ID: not an integer: 'x'",
    ),
    (
        ["export", "ok-001", "999", *TO_FILE],
        "no individual 999 in run 'ok-001'",
    ),
    (["export", "zzz-001", "0", *TO_FILE], "unknown run 'zzz-001'"),
    (
        ["bench", "ok-001", BIG, "--workspace", "{ws}"],
        f"argument ID: an individual id must be in [0, {SEED_MAX}], got {BIG}",
    ),
    (
        ["confirm", "ok-001", "--ids", BIG, "--workspace", "{ws}"],
        f"argument --ids: an individual id must be in [0, {SEED_MAX}]",
    ),
    (
        ["confirm", "ok-001", "--ids", "-5", "--workspace", "{ws}"],
        "argument --ids: an individual id must be in [0, ",
    ),
    (
        ["confirm", "ok-001", "--ids", "999", "--workspace", "{ws}"],
        "run 'ok-001' is a search: confirming it needs --protocol FILE.toml (a [training] table)",
    ),
    (["confirm", "zzz-001", "--workspace", "{ws}"], "unknown run 'zzz-001'"),
    (
        ["confirm", "ok-001", "--reinit-seeds", "-1", "--workspace", "{ws}"],
        "argument --reinit-seeds: a seed must be in [0, ",
    ),
    (["dashboard", "--port", "99999"], "argument --port: a TCP port must be in [0, 65535], got 99999"),
    (["dashboard", "--port", "-1"], "argument --port: a TCP port must be in [0, 65535], got -1"),
    (
        ["dashboard", "--host", "0.0.0.0", "--workspace", "{ws}"],
        "binding the dashboard to 0.0.0.0 (not loopback) needs a token",
    ),
    (
        ["dashboard", "--token", "short", "--workspace", "{ws}"],
        "the dashboard token must have at least 16 characters",
    ),
    (
        [*STABILITY, "--threads", "0"],
        "argument --threads: a thread count must be in [1, 1024], got 0",
    ),
    (
        [*STABILITY, "--threads", "x"],
        "argument --threads: not an integer: 'x'",
    ),
    (["stability", "{tmp}/missing.toml", "--out", "{tmp}/o"], "missing.toml"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> dict[str, Any]:
    """One workspace with one finished run (``ok-001``: a tiny search in this process), a scratch
    directory, and the runs listing every case must leave as it was."""
    from helpers import tiny_config

    import lotterysearch as ls

    root = tmp_path_factory.mktemp("bad-inputs")
    ws, tmp = root / "ws", root / "tmp"
    tmp.mkdir()
    cfg = tiny_config(
        name="ok", evaluator="local", ga={"population": 8, "generations": 0}, fitness={"steps": 5}
    )
    with ls.search(cfg, ws) as run:
        assert run.status == "finished"
    return {"ws": str(ws), "tmp": str(tmp), "listing": runs_listing(str(ws))}


def runs_listing(ws: str) -> str:
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["runs", "--workspace", ws, "--format", "json"]) == 0
    return out.getvalue()


def assert_one_line_exit_2(capsys, workspace, argv: list[str], expected: str) -> None:
    fill = {"ws": workspace["ws"], "tmp": workspace["tmp"]}
    argv = [a.format(**fill) for a in argv]
    capsys.readouterr()
    code = main(argv)
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert code == 2, (argv, out, err)
    assert len(lines) == 1 and ONE_LINE.match(lines[0]), err
    assert expected.format(**fill) in lines[0], lines[0]
    assert "Traceback" not in out + err
    assert runs_listing(workspace["ws"]) == workspace["listing"]


def _ids(cases: list) -> list[str]:
    return [f"{c[0]}.{c[1]}={str(c[2])[:20]}" for c in cases]


@pytest.mark.parametrize(("section", "key", "value", "expected"), SEARCH_CASES, ids=_ids(SEARCH_CASES))
def test_a_bad_search_config_is_one_line_and_records_nothing(
    capsys, workspace, section, key, value, expected
):
    path = Path(workspace["tmp"]) / "bad.toml"
    path.write_text(toml_text(BASE, section, key, value))
    assert_one_line_exit_2(
        capsys, workspace, ["search", str(path), "--workspace", "{ws}", "--local"], expected
    )


@pytest.mark.parametrize(("section", "key", "value", "expected"), IMP_CASES, ids=_ids(IMP_CASES))
def test_a_bad_imp_config_is_one_line_and_records_nothing(capsys, workspace, section, key, value, expected):
    path = Path(workspace["tmp"]) / "badimp.toml"
    path.write_text(toml_text(IMP_BASE, section, key, value))
    assert_one_line_exit_2(capsys, workspace, ["imp", str(path), "--workspace", "{ws}", "--local"], expected)


@pytest.mark.parametrize(("argv", "expected"), ARGV_CASES, ids=[" ".join(a)[:60] for a, _ in ARGV_CASES])
def test_a_bad_argument_is_one_line_and_records_nothing(capsys, workspace, argv, expected):
    assert_one_line_exit_2(capsys, workspace, argv, expected)


def test_the_sweep_has_at_least_a_hundred_cases():
    assert len(SEARCH_CASES) + len(IMP_CASES) + len(ARGV_CASES) >= 100


def test_invalid_toml_is_one_line(capsys, workspace):
    path = Path(workspace["tmp"]) / "broken.toml"
    for text in (
        "name = \n",
        "[ga]\npopulation = 8\n[ga]\npopulation = 9\n",
        "seed = 0x\n",
    ):
        path.write_text(text)
        assert_one_line_exit_2(
            capsys, workspace, ["search", str(path), "--workspace", "{ws}"], f"{path} is not valid TOML"
        )


def test_an_integer_past_sqlite_is_one_line(capsys, workspace):
    """TOML reads integers of any size; the store holds signed 64-bit ones."""
    path = Path(workspace["tmp"]) / "huge.toml"
    path.write_text(toml_text(BASE, None, "seed", 10**20))
    assert_one_line_exit_2(
        capsys,
        workspace,
        ["search", str(path), "--workspace", "{ws}"],
        "field 'seed' must be an integer in [-2^63, 2^63 - 1], got 100000000000000000000",
    )


def test_a_limit_is_raised_by_its_environment_variable(capsys, workspace, monkeypatch):
    path = Path(workspace["tmp"]) / "big.toml"
    path.write_text(toml_text(BASE, "ga", "population", 200_000))
    argv = ["search", str(path), "--workspace", "{ws}", "--local"]
    monkeypatch.setenv("LOTTERYSEARCH_MAX_POPULATION", "x")
    assert_one_line_exit_2(
        capsys, workspace, argv, "$LOTTERYSEARCH_MAX_POPULATION must be a positive integer, got 'x'"
    )
    monkeypatch.setenv("LOTTERYSEARCH_MAX_POPULATION", "300000")  # past the bound: the next check speaks
    path.write_text(toml_text({**BASE, "ga": {"population": 200_000}}, "ga", "generations", -1))
    assert_one_line_exit_2(capsys, workspace, argv, "field 'ga.generations' must be an integer >= 0, got -1")


# ---- real pipes and a real SIGKILL -------------------------------------------------------------------
def _cli(*argv: str) -> list[str]:
    return [sys.executable, "-m", "lotterysearch.cli", *argv]


def test_a_search_piped_into_head_finishes_and_front_into_head_ends_quietly(tmp_path):
    """``search | head -1``: the reader leaves after the first line; the search goes on quietly, finishes
    (status ``finished``, exit 0, nothing on stderr). ``front RUN | head -1`` the same, without a traceback."""
    from helpers import tiny_toml

    from lotterysearch.storage.store import Store

    (tmp_path / "p.toml").write_text(
        tiny_toml(name="pipe", ga={"population": 8, "generations": 3}, fitness={"steps": 5})
    )
    ws = tmp_path / "ws"
    script = (
        f"{' '.join(_cli('search', str(tmp_path / 'p.toml'), '--workspace', str(ws), '--local'))}"
        ' 2>err.txt | head -1; echo "status ${PIPESTATUS[0]}"'
    )
    p = subprocess.run(["bash", "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    first, status = p.stdout.splitlines()
    assert first.startswith("run pipe-001 in ") and status == "status 0"
    assert (tmp_path / "err.txt").read_text() == ""
    with Store.open(ws, readonly=True) as store:
        assert store.run("pipe-001").status == "finished" and store.run("pipe-001").generations == 4

    r, w = os.pipe()
    os.close(r)  # the reader is gone before the first write: every write fails
    try:
        p = subprocess.run(
            _cli("front", "pipe-001", "--workspace", str(ws)),
            stdout=w,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
        )
    finally:
        os.close(w)
    assert p.returncode == 0 and p.stderr == ""


def _evaluator_pids(sid: int) -> list[int]:
    found = []
    for pid in session_pids(sid):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"EvaluatorActor" in cmdline:
            found.append(pid)
    return found


def test_the_evaluators_of_a_sigkilled_driver_exit_within_seconds(tmp_path):
    """A search on its own local Ray, SIGKILLed once its evaluators are up: they must be gone (exited, at
    most zombies of an init that does not reap) within 10 s, not linger holding their memory. Ray does this
    itself: the local raylet dies with its driver (parent-death signal) and a worker exits when its raylet
    does (about 3 s here); this guards it against a Ray upgrade or an evaluator that outlives that."""
    from helpers import tiny_toml

    (tmp_path / "k.toml").write_text(
        tiny_toml(
            name="kill",
            ga={"population": 8, "generations": 50},
            fitness={"steps": 200},
            ray={"num_evaluators": 2},
        )
    )
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    p = subprocess.Popen(
        _cli("search", str(tmp_path / "k.toml"), "--workspace", str(tmp_path / "ws")),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env=env,
    )
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and len(_evaluator_pids(p.pid)) < 2:
            assert p.poll() is None, "the search ended before its evaluators started"
            time.sleep(0.2)
        evaluators = _evaluator_pids(p.pid)
        assert len(evaluators) == 2
        os.kill(p.pid, signal.SIGKILL)
        killed = time.monotonic()
        while time.monotonic() - killed < 10 and set(evaluators) & set(session_pids(p.pid)):
            time.sleep(0.1)
        left = set(evaluators) & set(session_pids(p.pid))
        print(f"evaluators gone {time.monotonic() - killed:.1f} s after the driver's SIGKILL")
        assert not left, f"evaluators {sorted(left)} still alive 10 s after their driver was SIGKILLed"
    finally:
        for pid in session_pids(p.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        p.wait()
