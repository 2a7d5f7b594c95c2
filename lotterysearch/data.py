"""Built-in datasets as tensors: train / validation / test, validation carved from training data.

Search fitness reads only the validation split; the test split is for final reports. Nothing is downloaded:
MNIST-1D is generated offline (``mnist1d.data.make_dataset``) and cached, real MNIST is read from the four
IDX files the user already has, scikit-learn ships its digits, and ``synthetic`` is generated for tests.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lotterysearch.errors import ConfigError, DataError


@dataclass(frozen=True)
class Dataset:
    """Float32 inputs ``[N, features]`` and int64 labels for the three splits."""

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int

    @property
    def input_dim(self) -> int:
        return int(self.x_train.shape[1])

    def sizes(self) -> tuple[int, int, int]:
        return len(self.y_train), len(self.y_val), len(self.y_test)

    def check_input_width(self, spec: str, width: int, label: str = "model") -> None:
        """A model whose first layer takes ``width`` features cannot read this dataset: one-line error."""
        if width != self.input_dim:
            raise ConfigError(
                f"{label} {spec} takes {width} inputs, dataset {self.name} has {self.input_dim}"
            )


def cache_dir() -> Path:
    """``$LOTTERYSEARCH_CACHE``, else ``$XDG_CACHE_HOME/lotterysearch``, else ``~/.cache/lotterysearch``."""
    if os.environ.get("LOTTERYSEARCH_CACHE"):
        return Path(os.environ["LOTTERYSEARCH_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "lotterysearch"


def _split(
    name: str,
    x: np.ndarray,
    y: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    n_val: int,
    seed: int,
    num_classes: int,
) -> Dataset:
    """Carve ``n_val`` validation samples out of the training arrays with a seeded permutation."""
    order = np.random.default_rng(seed).permutation(len(y))
    val, train = order[:n_val], order[n_val:]

    def xt(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))

    def yt(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a, dtype=np.int64))

    return Dataset(
        name, xt(x[train]), yt(y[train]), xt(x[val]), yt(y[val]), xt(x_test), yt(y_test), num_classes
    )


# ---- MNIST-1D -------------------------------------------------------------------------------------
def _mnist1d_arrays() -> dict[str, np.ndarray]:
    """Generate MNIST-1D with the package's default arguments (4000 train / 1000 test, length 40).

    ``make_dataset`` reseeds Python's and numpy's global RNGs; their states are restored afterwards so
    that loading data never changes a seeded search. The arrays are cached under ``cache_dir()``.
    """
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    tag = hashlib.sha256(repr(sorted(vars(args).items())).encode()).hexdigest()[:12]
    path = cache_dir() / f"mnist1d-{tag}.npz"
    if path.is_file():
        try:
            with np.load(path) as npz:
                return {k: npz[k] for k in ("x", "y", "x_test", "y_test")}
        except (OSError, ValueError, KeyError, EOFError):
            pass  # a damaged cache is regenerated
    py_state, np_state = random.getstate(), np.random.get_state()
    try:
        data = make_dataset(args)
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
    arrays = {k: np.asarray(data[k]) for k in ("x", "y", "x_test", "y_test")}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
    os.replace(tmp, path)
    return arrays


def _load_mnist1d(seed: int, data_dir: str | Path | None) -> Dataset:
    a = _mnist1d_arrays()
    return _split("mnist1d", a["x"], a["y"], a["x_test"], a["y_test"], 1000, seed, 10)


# ---- MNIST (IDX files) ----------------------------------------------------------------------------
MNIST_FILES = {
    "train_images": ("train-images-idx3-ubyte", (60000, 28, 28)),
    "train_labels": ("train-labels-idx1-ubyte", (60000,)),
    "test_images": ("t10k-images-idx3-ubyte", (10000, 28, 28)),
    "test_labels": ("t10k-labels-idx1-ubyte", (10000,)),
}
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081


def read_idx(path: Path) -> np.ndarray:
    """Parse an IDX file (raw or gzip): 2 zero bytes, type byte 0x08 (ubyte), ndim, big-endian dims, data."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as e:
        raise DataError(f"cannot read IDX file '{path}' ({e})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataError(f"'{path}' is not an unsigned-byte IDX file (bad magic number)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"IDX file '{path}' is truncated (header)")
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(dims))
    if len(raw) != expected:
        raise DataError(f"IDX file '{path}' has {len(raw)} bytes, its header {dims} needs {expected}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def mnist_search_dirs(data_dir: str | Path | None) -> list[Path]:
    """Where MNIST files are looked for: DIR, DIR/MNIST/raw (torchvision's layout), DIR/mnist."""
    root = data_dir if data_dir is not None else os.environ.get("LOTTERYSEARCH_DATA")
    if root is None:
        raise DataError("mnist needs its four IDX files: pass --data-dir DIR or set LOTTERYSEARCH_DATA")
    root = Path(root).expanduser()
    return [root, root / "MNIST" / "raw", root / "mnist"]


def _find_mnist_file(stem: str, dirs: list[Path]) -> Path:
    for d in dirs:
        for candidate in (d / stem, d / f"{stem}.gz"):
            if candidate.is_file():
                return candidate
    looked = ", ".join(str(d) for d in dirs)
    raise DataError(f"MNIST file '{stem}[.gz]' not found; looked in: {looked}")


def load_mnist_arrays(data_dir: str | Path | None) -> dict[str, np.ndarray]:
    dirs = mnist_search_dirs(data_dir)
    out = {}
    for key, (stem, shape) in MNIST_FILES.items():
        path = _find_mnist_file(stem, dirs)
        arr = read_idx(path)
        if arr.shape != shape:
            raise DataError(f"MNIST file '{path}' has shape {arr.shape}, expected {shape}")
        out[key] = arr
    return out


def _load_mnist(seed: int, data_dir: str | Path | None) -> Dataset:
    a = load_mnist_arrays(data_dir)

    def norm(img: np.ndarray) -> np.ndarray:
        return ((img.reshape(len(img), -1).astype(np.float32) / 255.0) - MNIST_MEAN) / MNIST_STD

    return _split(
        "mnist",
        norm(a["train_images"]),
        a["train_labels"],
        norm(a["test_images"]),
        a["test_labels"],
        5000,
        seed,
        10,
    )


# ---- scikit-learn digits --------------------------------------------------------------------------
def _load_digits(seed: int, data_dir: str | Path | None) -> Dataset:
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise DataError("dataset 'digits' needs scikit-learn: pip install 'lotterysearch[digits]'") from None
    d = load_digits()
    x, y = d.data.astype(np.float32) / 16.0, d.target
    order = np.random.default_rng(12345).permutation(len(y))  # fixed test split, independent of seed
    test, rest = order[:360], order[360:]
    return _split("digits", x[rest], y[rest], x[test], y[test], 360, seed, 10)


# ---- synthetic ------------------------------------------------------------------------------------
SYNTHETIC_DIM, SYNTHETIC_CLASSES = 16, 4


def _load_synthetic(seed: int, data_dir: str | Path | None) -> Dataset:
    """A small learnable task: 16 Gaussian features, label = argmax of a fixed random linear map."""
    rng = np.random.default_rng(20240611)
    teacher = rng.normal(size=(SYNTHETIC_DIM, SYNTHETIC_CLASSES))
    x = rng.normal(size=(2000, SYNTHETIC_DIM))
    y = np.argmax(x @ teacher, axis=1)
    return _split("synthetic", x[:1600], y[:1600], x[1600:], y[1600:], 400, seed, SYNTHETIC_CLASSES)


DATASETS: dict[str, Callable[[int, str | Path | None], Dataset]] = {
    "mnist1d": _load_mnist1d,
    "mnist": _load_mnist,
    "digits": _load_digits,
    "synthetic": _load_synthetic,
}


def load_dataset(name: str, seed: int = 0, *, data_dir: str | Path | None = None) -> Dataset:
    """Load a built-in dataset; ``seed`` picks the validation split, ``data_dir`` locates MNIST."""
    return DATASETS[check_dataset_name(name)](seed, data_dir)


def check_dataset_name(name: str) -> str:
    if name not in DATASETS:
        raise DataError(f"unknown dataset '{name}' (known: {', '.join(DATASETS)})")
    return name
