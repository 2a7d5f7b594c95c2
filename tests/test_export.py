"""Exported tickets: compacted networks in every format compute what the masked network computes, load
without lotterysearch, and bad input is one line with exit 2."""

from __future__ import annotations

import subprocess
import sys
import zipfile

import numpy as np
import pytest
import torch
from helpers import tiny_config

import lotterysearch as ls
from lotterysearch.cli import main
from lotterysearch.core.masks import Mask, layerwise_shuffle, masked_call
from lotterysearch.core.models import build_model, input_width
from lotterysearch.errors import ConfigError, ExportError
from lotterysearch.pruning.pruners import prune
from lotterysearch.readers import export as ex
from lotterysearch.runs import confirmation


def outputs_agree(model, mask, run, n: int = 16) -> None:
    x = torch.randn(n, input_width(model), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(run(x), masked_call(model.eval(), mask, x), atol=1e-5, rtol=1e-5)


def hand_mask() -> Mask:
    """mlp:4-3-2: hidden neuron 2 has no live outgoing weight, and input 3 feeds only neuron 2, so both
    go: the compacted network reads inputs 0-2 into hidden neurons 0-1."""
    fc1 = torch.tensor([[1, 1, 0, 0], [0, 1, 1, 0], [1, 0, 0, 1]], dtype=torch.bool)
    fc2 = torch.tensor([[1, 0, 0], [1, 1, 0]], dtype=torch.bool)
    return Mask({"fc1": fc1, "fc2": fc2})


def test_the_compacted_mlp_drops_dead_units_and_computes_the_masked_function() -> None:
    model = build_model("mlp:4-3-2", 0)
    mask = hand_mask()
    for sparse in (False, True):
        net = ex.compact_network(model, mask, sparse=sparse)
        assert ex.widths_text(net) == "3→2, 2→2"
        columns = [m for m in net if isinstance(m, ex.InputColumns)]
        assert [c.index.tolist() for c in columns] == [[0, 1, 2]]
        outputs_agree(model, mask, net)
    # by hand: fc1 keeps rows 0, 1 and columns 0-2 of M⊙W
    dense = ex.compact_network(model, mask)[2]
    w = model.layers.fc1.weight.detach() * mask["fc1"]
    torch.testing.assert_close(dense.weight, w[:2, :3])


@pytest.mark.parametrize(
    ("spec", "rho"),
    [("mlp:16-12-12-4", 8), ("conv:8x8x1:4-M:6-10", 5), ("cnn1d:40:8k5-8:10", 6), ("conv2:8x8x1", 30)],
)
def test_compacted_networks_equal_the_masked_network(spec: str, rho: float) -> None:
    model = build_model(spec, 1)
    mask = prune(model, "synflow", rho, iterations=10)
    for sparse in (False, True):
        outputs_agree(model, mask, ex.compact_network(model, mask, sparse=sparse))


def test_the_sparse_form_packs_live_weights_and_computes_csr_where_the_rule_says(tmp_path) -> None:
    model = build_model("mlp:784-300-100-10", 0)
    mask = layerwise_shuffle(prune(model, "magnitude", 20), np.random.default_rng(0))
    net = ex.compact_network(model, mask, sparse=True)
    layers = [m for m in net if isinstance(m, ex.PackedLinear)]
    # 5% of each layer live, at random: fc1 (235 200 weights) is large and sparse enough for CSR
    assert [m.csr for m in layers] == [True, False, False]
    path, error = ex.write_network(model, mask, "sparse", tmp_path / "t.pt")
    assert error <= ex.TOLERANCE
    loaded = torch.jit.load(str(path))
    packed_layers = [m for _, m in loaded.named_children() if hasattr(m, "csr")]
    assert [m.weight.layout for m in packed_layers][:1] == [torch.sparse_csr]
    outputs_agree(model, mask, loaded)
    # the file holds 4 bytes a live weight and a bit a position, plus biases and TorchScript's code
    packed = sum(ex.packed_bytes(*m.dense().shape, int((m.dense() != 0).sum())) for m in layers)
    size = path.stat().st_size
    assert packed <= size <= packed + 4 * (300 + 100 + 10) + 40_000
    assert size * 10 < 4 * mask.total()  # ten times smaller than the dense float32 weights


LOAD_WITHOUT_LOTTERYSEARCH = """
import sys, warnings
sys.modules["lotterysearch"] = None  # importing it fails: the files must carry their code
warnings.simplefilter("ignore")
import torch, onnxruntime
x = torch.load(sys.argv[1])
for path in sys.argv[2:]:
    if path.endswith(".onnx"):
        s = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
        y = torch.from_numpy(s.run(None, {"x": x.numpy()})[0])
    elif path.endswith(".pt2"):
        y = torch.export.load(path).module()(x)
    else:
        y = torch.jit.load(path)(x)
    torch.save(y, path + ".out")
"""


def test_every_format_loads_without_lotterysearch_and_gives_the_masked_outputs(tmp_path) -> None:
    cases = {"mlp": "mlp:16-12-12-4", "conv": "conv:8x8x1:4-M:6-10"}
    x_paths, files = {}, []
    for name, spec in cases.items():
        model = build_model(spec, 2)
        mask = prune(model, "synflow", 6, iterations=10)
        x = torch.randn(5, input_width(model), generator=torch.Generator().manual_seed(1))
        torch.save(x, tmp_path / f"{name}.x")
        x_paths[name] = (model, mask, x)
        for fmt in ex.MODEL_FORMATS:
            path, error = ex.write_network(model, mask, fmt, tmp_path / f"{name}-{fmt}{ex.FORMATS[fmt]}")
            assert error <= ex.TOLERANCE
            files.append((name, path))
    for name, (model, mask, x) in x_paths.items():
        mine = [str(p) for n, p in files if n == name]
        done = subprocess.run(
            [sys.executable, "-c", LOAD_WITHOUT_LOTTERYSEARCH, str(tmp_path / f"{name}.x"), *mine],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        with torch.no_grad():
            want = masked_call(model.eval(), mask, x)
        for path in mine:
            torch.testing.assert_close(torch.load(path + ".out"), want, atol=1e-5, rtol=1e-5)
    assert zipfile.is_zipfile(files[0][1])  # TorchScript's archive, not a pickle of our classes


# ---- a run's tickets ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    ws = tmp_path_factory.mktemp("export") / "ws"
    cfg = tiny_config(evaluator="local", ga={"generations": 1}, fitness={"steps": 20})
    ls.search(cfg, ws).close()
    return ws


def test_run_export_writes_the_ticket_with_its_own_init_or_retrained(finished, tmp_path) -> None:
    with ls.open_run(finished, "tiny-001") as run:
        everyone = run.individuals()
        seeded = next(i for i in everyone if i.origin.startswith("synflow:seed=1"))
        done = run.export(seeded.id, tmp_path / "init.pt", weights="init")
        assert (done.format, done.weights, done.ticket.seed) == ("compact", "init", 1)
        outputs_agree(build_model("mlp:16-24-24-4", 1), seeded.mask, torch.jit.load(str(done.path)))
        # a child is a topology: its own init is the fitness seed, and retraining it under the run's
        # fitness protocol repeats its search training
        child = next(i for i in everyone if i.origin == "child" and i.evaluated)
        inits = confirmation.run_inits(run.store, run.id)
        assert confirmation.own_init(child, inits).seed == run.config.fitness.init_seeds[0]
        trained = run.export(child.id, tmp_path / "trained.onnx")
        assert trained.format == "onnx" and trained.ticket.result.steps == 20
        assert trained.ticket.result.val_accuracy == pytest.approx(child.accuracy, abs=0.01)
        assert trained.error <= ex.TOLERANCE
        mask_file = run.export(child.id, tmp_path / "m.npz")
        assert Mask.load(mask_file.path) == child.mask


def one_line_error(capsys, *argv: str) -> str:
    code = main(list(argv))
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("lotterysearch: error: "), (out, err)
    return lines[0].removeprefix("lotterysearch: error: ")


def test_cli_export_and_bench(finished, capsys, tmp_path) -> None:
    ws = str(finished)
    assert main(["export", "tiny-001", "2", "--workspace", ws, "--out", str(tmp_path / "a.pt2")]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"saved {tmp_path / 'a.pt2'} (program, ") and "validation accuracy" in out
    assert main(["bench", "tiny-001", "2", "--workspace", ws, "--batch", "1", "4", "--rounds", "1"]) == 0
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines() if line.split()[:1] in (["compact"], ["onnx"])]
    assert [(r[0], r[1]) for r in rows] == [("compact", "1"), ("onnx", "1"), ("compact", "4"), ("onnx", "4")]
    masked = [line.split() for line in out.splitlines() if line.startswith("dense masked")]
    assert [float(r[5]) for r in masked] == [1.0, 1.0]  # the baseline's ratio to itself


def test_cli_export_errors_are_one_line_and_write_nothing(finished, capsys, tmp_path) -> None:
    ws = str(finished)
    base = ["export", "tiny-001", "2", "--workspace", ws]
    out = str(tmp_path / "x.pt")
    assert one_line_error(capsys, *base, "--out", out, "--format", "tflite") == (
        "unknown export format 'tflite' (known: mask, compact, sparse, program, onnx)"
    )
    assert one_line_error(capsys, *base, "--out", out, "--weights", "final") == (
        "unknown weights 'final' (known: init, trained)"
    )
    assert one_line_error(capsys, "export", "tiny-001", "999", "--workspace", ws, "--out", out).startswith(
        "no individual 999 in run 'tiny-001'"
    )
    (tmp_path / "file").write_text("")
    blocked = str(tmp_path / "file" / "x.onnx")
    assert one_line_error(capsys, *base, "--out", blocked).startswith(f"cannot write '{blocked}'")
    assert one_line_error(capsys, *base, "--out", str(tmp_path)).endswith("it is a directory")
    assert one_line_error(capsys, "bench", "tiny-001", "2", "--workspace", ws, "--threads", "0") == (
        "threads must be >= 1, got 0"
    )
    assert not (tmp_path / "x.pt").exists()


def test_a_gradient_mode_run_is_refused(tmp_path) -> None:
    ls.create_run(tiny_config(evaluator="local", mode="gradient"), tmp_path / "ws").close()
    with pytest.raises(
        ExportError, match=r"^run 'tiny-001' trains in gradient mode \(a dense forward pass\)"
    ):
        with ls.open_run(tmp_path / "ws", "tiny-001") as run:
            run.export(0, tmp_path / "x.pt")
    with pytest.raises(ConfigError, match=r"^'mask' is not a model format"):
        ex.write_network(build_model("mlp:4-3-2", 0), hand_mask(), "mask", tmp_path / "x.npz")
