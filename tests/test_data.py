"""Datasets: split sizes, validation carved from training data, offline MNIST-1D, IDX parsing, CIFAR-10's
python batches, and errors; a model spec against the data."""

import gzip
import os
import pickle
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from convtools import cifar_batch, write_cifar

from lotterysearch.core.data import load_dataset, read_idx
from lotterysearch.errors import ConfigError, DataError

MNIST_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"
needs_mnist = pytest.mark.skipif(
    not MNIST_DIR.is_dir(), reason="the team's MNIST copy is not beside the project"
)


def rows(x: torch.Tensor) -> set[bytes]:
    return {r.numpy().tobytes() for r in x}


def test_synthetic_splits_are_disjoint_and_seeded() -> None:
    d = load_dataset("synthetic", seed=0)
    assert d.sizes() == (1200, 400, 400) and d.num_classes == 4 and d.input_dim == 16
    assert not rows(d.x_train) & rows(d.x_val)
    assert not (rows(d.x_train) | rows(d.x_val)) & rows(d.x_test)
    other = load_dataset("synthetic", seed=1)
    assert torch.equal(other.x_test, d.x_test)  # the test split never depends on the seed
    assert not torch.equal(other.x_val, d.x_val)
    assert rows(other.x_train) | rows(other.x_val) == rows(d.x_train) | rows(d.x_val)


def test_mnist1d_is_generated_offline_cached_and_keeps_global_rngs(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("LOTTERYSEARCH_CACHE", str(tmp_path))
    random.seed(5)
    np.random.seed(5)
    py, npy = random.getstate(), np.random.get_state()
    d = load_dataset("mnist1d")
    assert random.getstate() == py
    assert np.array_equal(np.random.get_state()[1], npy[1])
    assert d.sizes() == (3000, 1000, 1000) and d.input_dim == 40 and d.num_classes == 10
    cached = list(tmp_path.glob("mnist1d-*.npz"))
    assert len(cached) == 1
    again = load_dataset("mnist1d")
    assert torch.equal(again.x_train, d.x_train) and torch.equal(again.y_test, d.y_test)


def test_unknown_dataset() -> None:
    known = "mnist1d, mnist, digits, synthetic, cifar10, tensors"
    with pytest.raises(DataError, match=rf"^unknown dataset 'cifar' \(known: {known}\)$"):
        load_dataset("cifar")


def test_digits() -> None:
    d = load_dataset("digits")
    assert d.sizes() == (1077, 360, 360) and d.input_dim == 64
    assert float(d.x_train.max()) == 1.0


@needs_mnist
def test_mnist_from_gz_raw_and_torchvision_layout(tmp_path) -> None:
    d = load_dataset("mnist", data_dir=MNIST_DIR)
    assert d.sizes() == (55000, 5000, 10000) and d.input_dim == 784
    assert abs(float(d.x_train.mean())) < 0.01 and abs(float(d.x_train.std()) - 1) < 0.01
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for f in MNIST_DIR.glob("*.gz"):
        with gzip.open(f) as src, open(raw / f.stem, "wb") as dst:
            shutil.copyfileobj(src, dst)
    again = load_dataset("mnist", data_dir=tmp_path)  # torchvision's <root>/MNIST/raw, uncompressed
    assert torch.equal(again.x_test, d.x_test) and torch.equal(again.y_train, d.y_train)


def test_mnist_without_location_or_with_missing_files(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("LOTTERYSEARCH_DATA", raising=False)
    with pytest.raises(
        DataError, match=r"^mnist needs its four IDX files: pass --data-dir DIR or set LOTTERYSEARCH_DATA$"
    ):
        load_dataset("mnist")
    monkeypatch.setenv("LOTTERYSEARCH_DATA", str(tmp_path))
    with pytest.raises(
        DataError, match=rf"^MNIST file 'train-images-idx3-ubyte\[\.gz\]' not found; looked in: {tmp_path}, "
    ):
        load_dataset("mnist")


def test_idx_parser_header_and_damage(tmp_path) -> None:
    good = tmp_path / "a-idx3-ubyte"
    good.write_bytes(
        bytes([0, 0, 8, 3])
        + (2).to_bytes(4, "big")
        + (2).to_bytes(4, "big")
        + (3).to_bytes(4, "big")
        + bytes(range(12))
    )
    arr = read_idx(good)
    assert arr.shape == (2, 2, 3) and arr[1, 1, 2] == 11
    short = tmp_path / "b-idx3-ubyte"
    short.write_bytes(good.read_bytes()[:-1])
    with pytest.raises(
        DataError, match=r"^IDX file '.*b-idx3-ubyte' has 27 bytes, its header \(2, 2, 3\) needs 28$"
    ):
        read_idx(short)
    bad = tmp_path / "c.gz"
    bad.write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match=r"^cannot read IDX file '.*c.gz'"):
        read_idx(bad)
    foreign = tmp_path / "d"
    foreign.write_bytes(b"PK\x03\x04....")
    with pytest.raises(DataError, match=r"is not an unsigned-byte IDX file \(bad magic number\)$"):
        read_idx(foreign)


# ---- CIFAR-10 from files written in its exact format ----------------------------------------------
def test_cifar10_from_the_batches_folder_and_the_archive_agree(tmp_path, monkeypatch) -> None:
    write_cifar(tmp_path / "a")
    d = load_dataset("cifar10", seed=0, data_dir=tmp_path / "a")
    assert d.sizes() == (18, 2, 4) and d.input_dim == 3072 and d.num_classes == 10
    assert d.input_shape == (3, 32, 32) and d.shape == (3, 32, 32)
    test = cifar_batch(4, 5)
    assert d.y_test.tolist() == test[b"labels"]
    # pixel (row 2, column 7) of the green plane of test image 1, normalised with the green channel's stats
    raw = test[b"data"][1].reshape(3, 32, 32)[1, 2, 7]
    assert float(d.x_test.view(-1, 3, 32, 32)[1, 1, 2, 7]) == pytest.approx(
        (raw / 255 - 0.4822) / 0.2435, abs=1e-5
    )
    train_labels = sorted(v for s in range(5) for v in cifar_batch(4, s)[b"labels"])
    assert sorted(d.y_train.tolist() + d.y_val.tolist()) == train_labels
    write_cifar(tmp_path / "b" / "cifar10", archive=True)  # DIR/cifar10/cifar-10-python.tar.gz
    monkeypatch.setenv("LOTTERYSEARCH_DATA", str(tmp_path / "b"))
    again = load_dataset("cifar10", seed=0)
    assert torch.equal(again.x_train, d.x_train) and torch.equal(again.y_test, d.y_test)


def test_cifar10_missing_is_a_one_line_error(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("LOTTERYSEARCH_DATA", raising=False)
    with pytest.raises(DataError) as e:
        load_dataset("cifar10")
    assert str(e.value) == (
        "cifar10 needs its python batches (cifar-10-batches-py/ or cifar-10-python.tar.gz): "
        "pass --data-dir DIR or set LOTTERYSEARCH_DATA"
    )
    with pytest.raises(DataError) as e:
        load_dataset("cifar10", data_dir=tmp_path)
    assert str(e.value) == (
        f"CIFAR-10 not found: no cifar-10-batches-py/ or cifar-10-python.tar.gz in {tmp_path}, {tmp_path / 'cifar10'}"
    )


@pytest.mark.parametrize("archive", [False, True])
@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ({"data_batch_3": "missing"}, "CIFAR-10 batch 'data_batch_3' is missing from '{where}'"),
        (
            {"data_batch_2": b"not a pickle"},
            "CIFAR-10 batch '{where}/data_batch_2' is damaged or not a pickle (UnpicklingError)",
        ),
        (
            {"test_batch": {b"data": np.zeros((2, 3000), np.uint8), b"labels": [0, 1]}},
            "CIFAR-10 batch '{where}/test_batch' has data uint8 (2, 3000), expected uint8 (N, 3072)",
        ),
        (
            {"data_batch_1": {b"data": np.zeros((2, 3072), np.uint8), b"labels": [3, 10]}},
            "CIFAR-10 batch '{where}/data_batch_1' has label 10, expected 0..9",
        ),
        (
            {"data_batch_5": {b"data": np.zeros((2, 3072), np.uint8), b"labels": [3]}},
            "CIFAR-10 batch '{where}/data_batch_5' has 1 labels for 2 images",
        ),
        (
            {"data_batch_4": {b"labels": [1]}},
            "CIFAR-10 batch '{where}/data_batch_4' lacks its b'data' and b'labels' entries",
        ),
        (
            {"data_batch_1": pickle.dumps(os.system, protocol=2)},
            "CIFAR-10 batch '{where}/data_batch_1' is damaged or not a pickle (UnpicklingError)",
        ),
    ],
)
def test_damaged_cifar10_is_a_one_line_error(tmp_path, archive: bool, damage: dict, message: str) -> None:
    where = write_cifar(tmp_path, archive=archive, **damage)
    with pytest.raises(DataError) as e:
        load_dataset("cifar10", data_dir=tmp_path)
    assert str(e.value) == message.format(where=where)


def test_truncated_cifar10_archive(tmp_path) -> None:
    archive = write_cifar(tmp_path, archive=True)
    archive.write_bytes(archive.read_bytes()[:100])
    with pytest.raises(DataError, match=r"^cannot read CIFAR-10 archive '.*cifar-10-python.tar.gz' \(\w+\)$"):
        load_dataset("cifar10", data_dir=tmp_path)


# ---- a model spec against the data --------------------------------------------------------------
def test_datasets_know_their_sample_shape() -> None:
    assert load_dataset("mnist1d").input_shape == (1, 40)
    assert load_dataset("digits").input_shape == (1, 8, 8)
    assert load_dataset("synthetic").input_shape == () and load_dataset("synthetic").shape == (16,)


@pytest.mark.parametrize(
    ("dataset", "spec", "message"),
    [
        ("mnist1d", "conv2:28x28x1", "model conv2:28x28x1 takes 28x28x1 inputs, dataset mnist1d has 40"),
        ("digits", "conv:8x8x3:4:10", "model conv:8x8x3:4:10 takes 8x8x3 inputs, dataset digits has 8x8x1"),
        ("digits", "cnn1d:64:4:10", "model cnn1d:64:4:10 takes 64 inputs, dataset digits has 8x8x1"),
        (
            "synthetic",
            "cnn1d:16:4:4",
            "model cnn1d:16:4:4 takes 16 inputs, dataset synthetic has 16 plain features",
        ),
        (
            "mnist1d",
            "cnn1d:40:25k5-25-25:4",
            "model cnn1d:40:25k5-25-25:4 has 4 outputs, dataset mnist1d has 10 classes",
        ),
        ("mnist1d", "mlp:40-100-5", "model mlp:40-100-5 has 5 outputs, dataset mnist1d has 10 classes"),
        ("mnist1d", "mlp:30-10", "model mlp:30-10 takes 30 inputs, dataset mnist1d has 40"),
    ],
)
def test_a_spec_that_does_not_fit_the_data_is_a_one_line_error(dataset: str, spec: str, message: str) -> None:
    from lotterysearch.core.models import build_model, input_width

    data = load_dataset(dataset)
    with pytest.raises(ConfigError) as e:
        data.check_input_width(spec, input_width(build_model(spec, 0)))
    assert str(e.value) == message


def test_fitting_specs_pass() -> None:
    from lotterysearch.core.models import build_model, input_width

    for dataset, spec in [
        ("mnist1d", "cnn1d:40:25k5-25-25:10"),
        ("digits", "conv:8x8x1:4-M:10"),
        ("mnist1d", "mlp:40-10"),
    ]:
        load_dataset(dataset).check_input_width(spec, input_width(build_model(spec, 0)))
