"""Datasets: split sizes, validation carved from training data, offline MNIST-1D, IDX parsing and errors."""

import gzip
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from lotterysearch.data import load_dataset, read_idx
from lotterysearch.errors import DataError

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
    with pytest.raises(
        DataError, match=r"^unknown dataset 'cifar' \(known: mnist1d, mnist, digits, synthetic\)$"
    ):
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
