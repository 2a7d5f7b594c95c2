"""The command line: outputs a user reads, and one-line errors with exit 2 for every bad input."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import sqlite3
import subprocess
import sys

import numpy as np
import pytest
from helpers import printed_lines, tiny_toml

from lotterysearch.cli import main
from lotterysearch.core.alignment import permute_hidden
from lotterysearch.core.masks import Mask


def cli_toml(ga: dict | None = None, **overrides) -> str:
    """The tiny config as this file's searches use it: run ``cli-001``, a 16-12-12-4 MLP on synthetic,
    1 generation of 8 (what the printed lines below check), short seeding and fitness budgets."""
    specifics = {
        "name": "cli",
        "dataset": "synthetic",
        "model": "mlp:16-12-12-4",
        "seeding": {"iterations": 10},
        "ga": {"population": 8, "generations": 1, **(ga or {})},
        "fitness": {"steps": 20},
    }
    return tiny_toml(**{**specifics, **overrides})


TINY = cli_toml()


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(capsys, *argv: str) -> str:
    code, out, err = run(capsys, *argv)
    assert code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lotterysearch: error: "), err
    return lines[0].removeprefix("lotterysearch: error: ")


def test_prune_prints_the_layer_table_and_train_accepts_the_mask(capsys, tmp_path) -> None:
    path = tmp_path / "m.npz"
    code, out, _ = run(
        capsys,
        "prune",
        "--dataset",
        "synthetic",
        "--model",
        "mlp:16-12-4",
        "--compression",
        "5",
        "--out",
        str(path),
    )
    assert code == 0
    # 16*12 + 12*4 = 240 weights; rho = 5 keeps round(240 / 5) = 48
    assert "all" in out and "48       240    0.2000" in out
    assert "layer collapse: no" in out
    code, out, _ = run(
        capsys, "train", "--mask", str(path), "--dataset", "synthetic", "--steps", "30", "--test"
    )
    assert code == 0
    acc = float(out.split("validation accuracy ")[1].split()[0])
    assert 0.25 < acc <= 1.0 and "test accuracy" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["prune", "--pruner", "obd"],
            "unknown pruner 'obd' (known: synflow, snip, magnitude, random, imp, cs)",
        ),
        (
            ["prune", "--dataset", "cifar"],
            "unknown dataset 'cifar' (known: mnist1d, mnist, digits, synthetic, cifar10, tensors)",
        ),
        (
            ["prune", "--model", "resnet:18"],
            "unknown model spec 'resnet:18' (known: 'mlp:...', 'conv:...', 'conv2:...', 'conv4:...', 'conv6:...',"
            " 'cnn1d:...', 'resnet20', a factory 'package.module:function', e.g. 'mlp:40-100-100-10')",
        ),
        (["prune", "--compression", "0.5"], "compression must be >= 1 (ρ = |θ| / |θ_pruned|), got 0.5"),
        (
            ["prune", "--compression", "1e6"],
            "compression 1e+06 would keep no weight of the 15000 (global scope allows at most ρ = 15000)",
        ),
        (
            ["train", "--model", "mlp:40-10", "--mode", "sideways", "--steps", "1"],
            "unknown masking mode 'sideways' (known: forward, gradient, straight_through)",
        ),
        (
            ["train", "--model", "mlp:30-10", "--steps", "1"],
            "model mlp:30-10 takes 30 inputs, dataset mnist1d has 40",
        ),
        (["train"], "train needs --mask or --model"),
        (
            ["train", "--model", "mlp:16-8-4", "--dataset", "synthetic", "--optimizer", "lbfgs"],
            "field 'optimizer' must be one of adam, sgd, got 'lbfgs'",
        ),
        (
            ["train", "--model", "mlp:16-8-4", "--dataset", "synthetic", "--lr", "-1"],
            "field 'lr' must be a number > 0, got -1.0",
        ),
        (["canon", "a.npz", "b.npz", "c.npz"], None),
        (["stability", "missing.toml", "--out", "x"], None),
    ],
)
def test_bad_arguments_are_one_line_errors(capsys, argv, message) -> None:
    got = one_line_error(capsys, *argv)
    if message is not None:
        assert got == message


def test_mask_files_that_do_not_fit(capsys, tmp_path) -> None:
    mask = Mask({"fc1": np.ones((12, 16)), "fc2": np.ones((4, 12))})
    path = mask.save(tmp_path / "m.npz")
    msg = one_line_error(
        capsys, "train", "--mask", str(path), "--model", "mlp:16-10-4", "--dataset", "synthetic"
    )
    assert msg == "mask layer 'fc1' has shape [12, 16], the model's weight [10, 16]"
    truncated = tmp_path / "t.npz"
    truncated.write_bytes(path.read_bytes()[:50])
    assert one_line_error(capsys, "train", "--mask", str(truncated)).startswith(
        f"mask file '{truncated}' is damaged"
    )
    np.savez(tmp_path / "w.npz", w=np.ones(3))
    assert "is not a lotterysearch mask" in one_line_error(capsys, "canon", str(tmp_path / "w.npz"))
    conv = Mask({"conv1": np.ones((4, 1, 3, 3)), "fc1": np.ones((10, 4 * 14 * 14))}).save(tmp_path / "c.npz")
    assert one_line_error(capsys, "train", "--mask", str(conv), "--dataset", "mnist1d") == (
        "the mask is a convnet's (layer 'conv1' [4, 1, 3, 3]): pass --model, e.g. --model conv2:32x32x3"
    )


def test_errors_reach_the_shell_as_one_line_without_traceback(tmp_path) -> None:
    for argv in (["prune", "--pruner", "obd"], ["prune", "--frobnicate"]):
        p = subprocess.run([sys.executable, "-m", "lotterysearch.cli", *argv], capture_output=True, text=True)
        assert p.returncode == 2
        assert len(p.stderr.strip().splitlines()) == 1 and "Traceback" not in p.stderr


def test_canon_says_whether_two_masks_are_isomorphic(capsys, tmp_path) -> None:
    rng = np.random.default_rng(0)
    mask = Mask(
        {"fc1": rng.random((8, 6)) < 0.5, "fc2": rng.random((5, 8)) < 0.5, "fc3": rng.random((3, 5)) < 0.6}
    )
    a = mask.save(tmp_path / "a.npz")
    b = permute_hidden(mask, [rng.permutation(8), rng.permutation(5)]).save(tmp_path / "b.npz")
    code, out, _ = run(capsys, "canon", str(a), str(b))
    assert code == 0 and out.strip().endswith("isomorphic: yes")
    flipped = mask.to_numpy()
    live = np.argwhere(mask.effective()["fc1"].numpy())[0]
    flipped["fc1"][tuple(live)] = False
    c = Mask(flipped).save(tmp_path / "c.npz")
    code, out, _ = run(capsys, "canon", str(a), str(c))
    assert out.strip().endswith("isomorphic: no")


@pytest.fixture(scope="module")
def finished_run(ray_local, tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    (root / "tiny.toml").write_text(TINY)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = main(["search", str(root / "tiny.toml"), "--workspace", str(root / "ws")])
    assert code == 0
    (root / "printed.txt").write_text(printed.getvalue())
    return root


def test_search_prints_progress_and_the_front(finished_run, capsys) -> None:
    lines = printed_lines((finished_run / "printed.txt").read_text())
    assert lines[0].startswith("run cli-001 in ") and "population 8, 1 generations" in lines[0]
    from lotterysearch.evolution.problem import MaskProblem
    from lotterysearch.settings import parse_config

    cfg = parse_config(TINY)
    dense = MaskProblem(cfg).dense_objectives().accuracy  # the dense mask trained under the search's fitness
    assert lines[1] == (
        f"fitness: validation accuracy after {cfg.fitness.steps} training steps (adam, lr 0.01, batch 128)"
        f" from init seed 0; the dense network reaches {dense:.4f} under it"
    )
    assert lines[2].startswith("gen   0/1  evaluated ") and lines[3].startswith("gen   1/1  evaluated ")
    assert f"best val acc after {cfg.fitness.steps} steps 0." in lines[2]
    assert "skipped" in lines[2] and "HV" in lines[2]
    assert lines[4].startswith("run cli-001 (finished, after generation 1): Pareto front: ")
    assert lines[-1].startswith("front: lotterysearch front cli-001 --workspace ")
    code, out, _ = run(capsys, "runs", "--workspace", str(finished_run / "ws"), "--format", "json")
    runs = json.loads(out)
    assert code == 0 and [r["id"] for r in runs] == ["cli-001"] and runs[0]["status"] == "finished"


# The CLI in a fresh interpreter, reporting at exit whether anything imported Ray.
_CLI_WITHOUT_RAY = (
    "import sys\n"
    "from lotterysearch.cli import main\n"
    "code = main(sys.argv[1:])\n"
    "print('ray imported:', 'ray' in sys.modules)\n"
    "sys.exit(code)\n"
)


def test_search_local_trains_in_process_without_ray(tmp_path) -> None:
    """``--local``: the whole search runs in the CLI's process. RAY_ADDRESS names a port where nothing
    listens, so a search that went to Ray would fail with a one-line error instead of finishing."""
    from lotterysearch.readers import report
    from lotterysearch.storage.store import Store

    (tmp_path / "tiny.toml").write_text(TINY)
    ws = tmp_path / "ws"
    env = {**os.environ, "RAY_ADDRESS": "127.0.0.1:9"}
    argv = ["search", str(tmp_path / "tiny.toml"), "--workspace", str(ws), "--local"]
    p = subprocess.run(
        [sys.executable, "-c", _CLI_WITHOUT_RAY, *argv], capture_output=True, text=True, env=env, timeout=300
    )
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[-1] == "ray imported: False"
    assert lines[0] == f"run cli-001 in {ws}: mlp:16-12-12-4 on synthetic, population 8, 1 generations"
    assert lines[1].startswith("fitness: validation accuracy after ")
    assert lines[2].startswith("gen   0/1  evaluated ") and lines[3].startswith("gen   1/1  evaluated ")
    assert lines[4].startswith("run cli-001 (finished, after generation 1): Pareto front: ")
    assert lines[-2].startswith("front: lotterysearch front cli-001 --workspace ")
    printed_ids = [int(line.split()[0]) for line in lines[7:-2]]  # the table after title, header, rule
    with Store.open(ws) as store:
        assert store.run("cli-001").status == "finished"
        front = report.front_rows(store, "cli-001")
        assert len(store.individuals("cli-001")) == 16
    assert printed_ids == [r["id"] for r in front] and front
    assert f"Pareto front: {len(front)} of 16 evaluated masks" in lines[4]


def test_front_formats_plot_html_and_export(finished_run, capsys, tmp_path) -> None:
    ws = str(finished_run / "ws")
    code, out, _ = run(capsys, "front", "cli-001", "--workspace", ws, "--format", "csv")
    header, *rows = out.strip().splitlines()
    assert header == (
        "id,accuracy,density,effective_density,compression,class_key,generation,origin,lineage_steps,run_steps"
    )
    assert rows
    code, out, err = run(
        capsys,
        "front",
        "cli-001",
        "--workspace",
        ws,
        "--format",
        "json",
        "--plot",
        str(tmp_path / "f.png"),
        "--html",
        str(tmp_path / "f.html"),
    )
    front = json.loads(out)  # stdout stays clean JSON; "wrote" lines go to stderr
    assert code == 0 and len(front) == len(rows) and "wrote" in err
    from lotterysearch.runs.ledger import run_compute
    from lotterysearch.storage.store import Store

    with Store.open(ws, readonly=True) as store:  # each row's lineage steps, the run's up to its generation
        compute = run_compute(store, "cli-001")
    assert [(r["lineage_steps"], r["run_steps"]) for r in front] == [
        (compute.lineage_steps[r["id"]], compute.run_steps[r["id"]]) for r in front
    ]
    assert all(r["run_steps"] >= r["lineage_steps"] > 0 for r in front)
    assert (tmp_path / "f.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "data:image/png;base64," in (tmp_path / "f.html").read_text()
    best = max(front, key=lambda r: r["accuracy"])
    out_mask = tmp_path / "best.npz"
    code, out, _ = run(
        capsys, "export", "cli-001", str(best["id"]), "--workspace", ws, "--out", str(out_mask)
    )
    assert code == 0 and Mask.load(out_mask).density() == pytest.approx(best["density"])
    code, out, _ = run(capsys, "train", "--mask", str(out_mask), "--dataset", "synthetic", "--steps", "20")
    assert code == 0 and "validation accuracy" in out


def test_store_errors_are_one_line_and_write_nothing(finished_run, capsys, tmp_path) -> None:
    ws = str(finished_run / "ws")
    assert one_line_error(capsys, "front", "nope-001", "--workspace", ws).startswith("unknown run 'nope-001'")
    assert "individual 999" in one_line_error(
        capsys, "export", "cli-001", "999", "--workspace", ws, "--out", str(tmp_path / "x.npz")
    )
    assert not (tmp_path / "x.npz").exists()
    assert one_line_error(capsys, "runs", "--workspace", str(tmp_path / "missing")).startswith(
        "no lotterysearch workspace at"
    )
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    with sqlite3.connect(foreign / "lotterysearch.sqlite") as db:
        db.execute("create table t (x)")
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "lotterysearch.sqlite").write_bytes(b"SQLite format 3\x00" + b"\x07" * 300)
    for ws_dir in (foreign, corrupt):
        before = hashlib.sha256((ws_dir / "lotterysearch.sqlite").read_bytes()).hexdigest()
        one_line_error(capsys, "runs", "--workspace", str(ws_dir))
        (tmp_path / "c.toml").write_text(TINY)
        one_line_error(capsys, "search", str(tmp_path / "c.toml"), "--workspace", str(ws_dir))
        assert hashlib.sha256((ws_dir / "lotterysearch.sqlite").read_bytes()).hexdigest() == before
        assert sorted(p.name for p in ws_dir.iterdir()) == ["lotterysearch.sqlite"]


def test_search_argument_errors(finished_run, capsys, tmp_path) -> None:
    ws = str(finished_run / "ws")
    assert one_line_error(capsys, "search") == "search needs a CONFIG file (or --resume RUN)"
    assert one_line_error(capsys, "search", "--resume", "cli-001", "--workspace", ws) == (
        "run 'cli-001' has already finished; nothing to resume"
    )
    assert one_line_error(capsys, "search", "--resume", "zzz-001", "--workspace", ws).startswith(
        "unknown run 'zzz-001'"
    )
    bad = tmp_path / "bad.toml"
    bad.write_text(cli_toml(ga={"population": "x"}))
    assert one_line_error(capsys, "search", str(bad)) == "field 'ga.population' must be an integer, got 'x'"


def test_search_checks_data_and_address_before_writing_a_run(capsys, tmp_path) -> None:
    cfg = tmp_path / "wide.toml"
    cfg.write_text(cli_toml(model="mlp:30-12-12-4"))
    ws = tmp_path / "ws"
    msg = one_line_error(capsys, "search", str(cfg), "--workspace", str(ws))
    assert msg == "field 'model': mlp:30-12-12-4 takes 30 inputs, dataset synthetic has 16"
    (tmp_path / "ok.toml").write_text(TINY)
    msg = one_line_error(
        capsys, "search", str(tmp_path / "ok.toml"), "--workspace", str(ws), "--address", "127.0.0.1:9"
    )
    assert "127.0.0.1:9" in msg
    assert not ws.exists()  # nothing was written for either


def test_sigterm_stops_a_search_as_interrupted_and_resumable(ray_local, tmp_path) -> None:
    """`ray job stop` and `kill` send SIGTERM: the run must end 'interrupted', not 'failed', and resume."""
    import os
    import signal
    import time

    from lotterysearch.storage.store import Store

    (tmp_path / "t.toml").write_text(cli_toml(ga={"generations": 50}))
    ws = tmp_path / "ws"
    p = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lotterysearch.cli",
            "search",
            str(tmp_path / "t.toml"),
            "--workspace",
            str(ws),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if (ws / "lotterysearch.sqlite").exists():
                with Store.open(ws) as store:
                    if store.runs() and store.last_generation(store.runs()[0].id) is not None:
                        break
            time.sleep(0.1)
        os.kill(p.pid, signal.SIGTERM)
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 130
    assert "interrupted; resume with: lotterysearch search --resume cli-001" in err
    with Store.open(ws) as store:
        assert store.run("cli-001").status == "interrupted"


IMP_TOML = """kind = "imp"
name = "imp"
dataset = "synthetic"
model = "mlp:16-12-12-4"
[imp]
init_seeds = [0, 1]
rounds = 3
rate = 0.5
output_rate = 0.25
[training]
steps = 30
lr = 0.01
batch_size = 60
eval_every = 10
"""


def test_front_overlays_an_imp_run_on_a_search_front(finished_run, capsys, tmp_path) -> None:
    """``imp`` in process, then ``runs`` and ``front`` on the IMP run, and its tickets drawn over the GA
    run's front from another workspace (``--overlay``, ``--overlay-workspace``)."""
    from matplotlib.image import imread

    from lotterysearch.evolution import pareto
    from lotterysearch.readers import report
    from lotterysearch.storage.store import Store

    (tmp_path / "imp.toml").write_text(IMP_TOML)
    imp_ws, ga_ws = str(tmp_path / "imp"), str(finished_run / "ws")
    code, out, _ = run(capsys, "imp", str(tmp_path / "imp.toml"), "--workspace", imp_ws, "--local")
    assert code == 0 and "run imp-001 (finished): 8 IMP tickets, " in out
    code, out, _ = run(capsys, "runs", "--workspace", imp_ws, "--format", "json")
    (row,) = json.loads(out)
    assert (row["id"], row["status"], row["generations"], row["individuals"]) == ("imp-001", "finished", 3, 8)
    code, out, _ = run(capsys, "front", "imp-001", "--workspace", imp_ws, "--format", "csv")
    with Store.open(imp_ws) as store:
        front = pareto.front(store.individuals("imp-001"))
        imp_summary = report.run_summary(store, "imp-001")
    assert [int(line.split(",")[0]) for line in out.strip().splitlines()[1:]] == [i.id for i in front]

    png = tmp_path / "over.png"
    code, out, err = run(
        capsys,
        "front",
        "cli-001",
        "--workspace",
        ga_ws,
        "--plot",
        str(png),
        "--overlay",
        "imp-001",
        "--overlay-workspace",
        imp_ws,
    )
    assert code == 0 and out.startswith("run cli-001 (finished, after generation 1): Pareto front: ")
    with Store.open(ga_ws) as store:
        sets = report.overlay_sets(report.run_summary(store, "cli-001"), imp_summary)
    assert len(sets.other_points) == 8 and sets.other_front == [(i.density, i.accuracy) for i in front]
    assert err.splitlines() == [
        f"wrote {png}",
        f"overlay: {len(sets.dominated)} of 8 points of imp-001 lie below the front of cli-001",
    ]
    img = imread(png)
    assert img.shape == (572, 1375, 4) and img[..., :3].std() > 0.05

    ga = ["front", "cli-001", "--workspace", ga_ws]
    assert (
        one_line_error(capsys, *ga, "--overlay", "imp-001")
        == "--overlay draws on the plot: give --plot FILE.png too"
    )
    missing = tmp_path / "missing.png"
    msg = one_line_error(
        capsys, *ga, "--plot", str(missing), "--overlay", "imp-001"
    )  # not in the GA workspace
    assert msg.startswith("unknown run 'imp-001'") and not missing.exists()
