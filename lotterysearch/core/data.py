"""Built-in datasets as tensors: train / validation / test, validation carved from training data.

Search fitness reads only the validation split; the test split is for final reports. Nothing is downloaded:
MNIST-1D is generated offline (``mnist1d.data.make_dataset``) and cached, real MNIST is read from the four
IDX files the user already has, CIFAR-10 from the user's python batches (``cifar-10-batches-py``, extracted
or as the ``.tar.gz``), scikit-learn ships its digits, and ``synthetic`` is generated for tests.

Inputs are stored flat (``[N, features]``) whatever their nature; ``Dataset.input_shape`` says how a
sample's features lie (``(C, H, W)`` channel-major, ``(C, L)``, or ``(features,)`` for plain features), so a
convnet can view them and a spec can be checked against them, while batching and Ray see one layout.
"""

from __future__ import annotations

import copy
import gzip
import hashlib
import io
import math
import os
import pickle
import random
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lotterysearch import settings
from lotterysearch.core.models import is_factory, parse_spec, shape_text
from lotterysearch.errors import ConfigError, DataError


@dataclass(frozen=True)
class Dataset:
    """Float32 inputs ``[N, features]`` and int64 labels for the three splits; ``input_shape``: how one
    sample's features lie (``()`` means plain features, ``(input_dim,)``)."""

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    input_shape: tuple[int, ...] = ()

    @property
    def input_dim(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def shape(self) -> tuple[int, ...]:
        """One sample's shape: ``input_shape``, or ``(input_dim,)`` for plain features."""
        return tuple(self.input_shape) or (self.input_dim,)

    def sizes(self) -> tuple[int, int, int]:
        return len(self.y_train), len(self.y_val), len(self.y_test)

    def check_model(self, spec: str, model: torch.nn.Module, label: str = "model") -> None:
        """``check_input_width`` for a spec; a factory's network (``modules``) is run on two samples instead,
        and must give one output per class: anything else is a one-line ``ConfigError`` naming both."""
        if not is_factory(spec):
            from lotterysearch.core.models import input_width

            self.check_input_width(spec, input_width(model), label)
            return
        try:
            with torch.no_grad():
                out = copy.deepcopy(model).eval()(self.x_train[:2])
        except Exception as e:  # the user's network, on this data
            first = str(e).strip().splitlines()[0] if str(e).strip() else ""
            raise ConfigError(
                f"{label} {spec} fails on dataset {self.name}'s inputs (samples of shape"
                f" {list(self.shape)}): {type(e).__name__}: {first}"
            ) from None
        if not isinstance(out, torch.Tensor) or tuple(out.shape) != (
            min(2, len(self.y_train)),
            self.num_classes,
        ):
            got = list(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ConfigError(
                f"{label} {spec} gives outputs {got} on two samples, dataset {self.name} has"
                f" {self.num_classes} classes: a network must give [N, classes] logits"
            )

    def fingerprint(self) -> str:
        """sha256 of every split's shape and bytes, and of the sample shape, cut to 16 hex digits: a run
        made on data given from Python refuses a resume against other data."""
        h = hashlib.sha256(repr((self.shape, self.num_classes)).encode())
        for t in (self.x_train, self.y_train, self.x_val, self.y_val, self.x_test, self.y_test):
            h.update(repr(tuple(t.shape)).encode())
            h.update(t.contiguous().numpy().tobytes())
        return h.hexdigest()[:16]

    def check_input_width(self, spec: str, width: int, label: str = "model") -> None:
        """The model of ``spec`` (its first layer taking ``width`` features) must read this dataset and
        predict its classes: a convnet needs the data's sample shape (``HxWxC``, ``L``), every model the
        data's width and one output per class. Otherwise a one-line ``ConfigError`` naming both."""
        arch = parse_spec(spec)
        wants = arch.input_shape
        if len(wants) > 1 and wants != self.shape:
            has = shape_text(self.shape) if len(self.shape) > 1 else f"{self.input_dim} plain features"
            raise ConfigError(
                f"{label} {spec} takes {shape_text(wants)} inputs, dataset {self.name} has {has}"
            )
        if width != self.input_dim:
            raise ConfigError(
                f"{label} {spec} takes {width} inputs, dataset {self.name} has {self.input_dim}"
            )
        if arch.outputs != self.num_classes:
            raise ConfigError(
                f"{label} {spec} has {arch.outputs} outputs, dataset {self.name} has {self.num_classes} classes"
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
    input_shape: tuple[int, ...] = (),
) -> Dataset:
    """Carve ``n_val`` validation samples out of the training arrays with a seeded permutation."""
    order = np.random.default_rng(seed).permutation(len(y))
    val, train = order[:n_val], order[n_val:]

    def xt(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))

    def yt(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a, dtype=np.int64))

    return Dataset(
        name,
        xt(x[train]),
        yt(y[train]),
        xt(x[val]),
        yt(y[val]),
        xt(x_test),
        yt(y_test),
        num_classes,
        input_shape,
    )


def _split_arrays(
    name: str,
    a: dict[str, np.ndarray],
    n_val: int,
    seed: int,
    num_classes: int,
    input_shape: tuple[int, ...],
    norm: Callable[[np.ndarray], np.ndarray] = np.asarray,
) -> Dataset:
    """``_split`` of a loader's arrays ``x``, ``y``, ``x_test`` and ``y_test``, the inputs through ``norm``."""
    return _split(
        name, norm(a["x"]), a["y"], norm(a["x_test"]), a["y_test"], n_val, seed, num_classes, input_shape
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
    return _split_arrays("mnist1d", a, 1000, seed, 10, (1, a["x"].shape[1]))


# ---- MNIST (IDX files) ----------------------------------------------------------------------------
MNIST_FILES = {  # keyed as every loader here keys its arrays (``_split_arrays``)
    "x": ("train-images-idx3-ubyte", (60000, 28, 28)),
    "y": ("train-labels-idx1-ubyte", (60000,)),
    "x_test": ("t10k-images-idx3-ubyte", (10000, 28, 28)),
    "y_test": ("t10k-labels-idx1-ubyte", (10000,)),
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


def data_root(data_dir: str | Path | None, needs: str) -> Path:
    """``data_dir``, else ``$LOTTERYSEARCH_DATA``: where the user keeps the files a dataset ``needs``."""
    root = data_dir if data_dir is not None else os.environ.get("LOTTERYSEARCH_DATA")
    if root is None:
        raise DataError(f"{needs}: pass --data-dir DIR or set LOTTERYSEARCH_DATA")
    return Path(root).expanduser()


def mnist_search_dirs(data_dir: str | Path | None) -> list[Path]:
    """Where MNIST files are looked for: DIR, DIR/MNIST/raw (torchvision's layout), DIR/mnist."""
    root = data_root(data_dir, "mnist needs its four IDX files")
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

    return _split_arrays("mnist", a, 5000, seed, 10, (1, 28, 28), norm)


# ---- CIFAR-10 (python batches) --------------------------------------------------------------------
CIFAR_DIR, CIFAR_ARCHIVE = "cifar-10-batches-py", "cifar-10-python.tar.gz"
CIFAR_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR_TEST = "test_batch"
CIFAR_SHAPE = (3, 32, 32)  # each row: the R, G and B planes of 32×32, row-major
CIFAR_CLASSES = 10
# per-channel mean and std of the training images in [0, 1]
CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


class _BatchUnpickler(pickle.Unpickler):
    """CIFAR-10's batches are pickles of a dict holding a numpy array and lists: only the numpy classes
    that rebuild an array are loaded, so a foreign pickle cannot run code."""

    ALLOWED = {
        (module, name)
        for module in ("numpy.core.multiarray", "numpy._core.multiarray")
        for name in ("_reconstruct", "scalar")
    } | {("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}  # encode: bytes in protocol 2

    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"{module}.{name} is not part of a CIFAR-10 batch")
        return super().find_class(module, name)


def cifar_search_dirs(data_dir: str | Path | None) -> list[Path]:
    """Where CIFAR-10 is looked for: DIR and DIR/cifar10, each holding ``cifar-10-batches-py/`` (torchvision's
    layout) or ``cifar-10-python.tar.gz``."""
    root = data_root(data_dir, f"cifar10 needs its python batches ({CIFAR_DIR}/ or {CIFAR_ARCHIVE})")
    return [root, root / "cifar10"]


def _cifar_batches(dirs: list[Path]) -> tuple[str, dict[str, bytes]]:
    """The raw bytes of the six batches, from the first directory or archive found, and where they came from."""
    names = (*CIFAR_TRAIN, CIFAR_TEST)
    for d in dirs:
        folder, archive = d / CIFAR_DIR, d / CIFAR_ARCHIVE
        if folder.is_dir():
            missing = [n for n in names if not (folder / n).is_file()]
            if missing:
                raise DataError(f"CIFAR-10 batch '{missing[0]}' is missing from '{folder}'")
            return str(folder), {n: (folder / n).read_bytes() for n in names}
        if archive.is_file():
            try:
                with tarfile.open(archive, "r:gz") as tar:
                    members = {m.name: m for m in tar.getmembers() if m.isfile()}
                    missing = [n for n in names if f"{CIFAR_DIR}/{n}" not in members]
                    if missing:
                        raise DataError(f"CIFAR-10 batch '{missing[0]}' is missing from '{archive}'")
                    return str(archive), {
                        n: tar.extractfile(members[f"{CIFAR_DIR}/{n}"]).read() for n in names
                    }
            except (OSError, EOFError, tarfile.TarError) as e:
                raise DataError(f"cannot read CIFAR-10 archive '{archive}' ({type(e).__name__})") from None
    looked = ", ".join(str(d) for d in dirs)
    raise DataError(f"CIFAR-10 not found: no {CIFAR_DIR}/ or {CIFAR_ARCHIVE} in {looked}")


def _cifar_batch(raw: bytes, where: str) -> tuple[np.ndarray, np.ndarray]:
    """One batch's ``(images [N, 3072] uint8, labels [N])``, checked."""
    try:
        batch = _BatchUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except Exception as e:  # noqa: BLE001 - any failure to unpickle means the file is damaged
        raise DataError(f"CIFAR-10 batch '{where}' is damaged or not a pickle ({type(e).__name__})") from None
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        raise DataError(f"CIFAR-10 batch '{where}' lacks its b'data' and b'labels' entries")
    x, y = np.asarray(batch[b"data"]), np.asarray(batch[b"labels"])
    width = math.prod(CIFAR_SHAPE)
    if x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != width:
        raise DataError(
            f"CIFAR-10 batch '{where}' has data {x.dtype} {tuple(x.shape)}, expected uint8 (N, {width})"
        )
    if y.shape != (len(x),) or not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"CIFAR-10 batch '{where}' has {y.size} labels for {len(x)} images")
    bad = y[(y < 0) | (y >= CIFAR_CLASSES)]
    if bad.size:
        raise DataError(f"CIFAR-10 batch '{where}' has label {int(bad[0])}, expected 0..{CIFAR_CLASSES - 1}")
    return x, y


def load_cifar10_arrays(data_dir: str | Path | None) -> dict[str, np.ndarray]:
    """The five training batches joined, and the test batch, as uint8 images ``[N, 3072]`` and labels."""
    where, raw = _cifar_batches(cifar_search_dirs(data_dir))
    train = [_cifar_batch(raw[n], f"{where}/{n}") for n in CIFAR_TRAIN]
    x_test, y_test = _cifar_batch(raw[CIFAR_TEST], f"{where}/{CIFAR_TEST}")
    return {
        "x": np.concatenate([x for x, _ in train]),
        "y": np.concatenate([y for _, y in train]),
        "x_test": x_test,
        "y_test": y_test,
    }


def _load_cifar10(seed: int, data_dir: str | Path | None) -> Dataset:
    a = load_cifar10_arrays(data_dir)
    mean = np.repeat(np.asarray(CIFAR_MEAN, dtype=np.float32), 32 * 32)
    std = np.repeat(np.asarray(CIFAR_STD, dtype=np.float32), 32 * 32)

    def norm(img: np.ndarray) -> np.ndarray:
        return (img.astype(np.float32) / 255.0 - mean) / std

    n_val = min(5000, len(a["y"]) // 10)  # 5000 of the real 50 000, a tenth of a smaller copy
    return _split_arrays("cifar10", a, n_val, seed, CIFAR_CLASSES, CIFAR_SHAPE, norm)


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
    return _split("digits", x[rest], y[rest], x[test], y[test], 360, seed, 10, (1, 8, 8))


# ---- synthetic ------------------------------------------------------------------------------------
SYNTHETIC_DIM, SYNTHETIC_CLASSES = 16, 4


def _load_synthetic(seed: int, data_dir: str | Path | None) -> Dataset:
    """A small learnable task: 16 Gaussian features, label = argmax of a fixed random linear map."""
    rng = np.random.default_rng(20240611)
    teacher = rng.normal(size=(SYNTHETIC_DIM, SYNTHETIC_CLASSES))
    x = rng.normal(size=(2000, SYNTHETIC_DIM))
    y = np.argmax(x @ teacher, axis=1)
    return _split("synthetic", x[:1600], y[:1600], x[1600:], y[1600:], 400, seed, SYNTHETIC_CLASSES)


# ---- the user's tensors -----------------------------------------------------------------------------------
TENSORS = "tensors"  # the dataset name of a run whose data was given from Python
HELD_OUT = 0.1  # of the user's samples: the test split, then the validation split of the rest


def _load_tensors(seed: int, data_dir: str | Path | None) -> Dataset:
    raise DataError(
        "dataset 'tensors' is given from Python: pass data=(x, y) (or a torch Dataset) to"
        " lotterysearch.search, imp, open_run or confirm"
    )


def _arrays(data: object, what: str) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)`` tensors or arrays, or a map-style torch ``Dataset`` of ``(x, y)`` pairs, as numpy."""
    if isinstance(data, tuple | list) and len(data) == 2:
        x, y = data
    elif hasattr(data, "__getitem__") and hasattr(data, "__len__"):
        try:
            pairs = [data[i] for i in range(len(data))]
            x = torch.stack([torch.as_tensor(p[0]) for p in pairs])
            y = torch.as_tensor([int(p[1]) for p in pairs])
        except Exception as e:  # the user's dataset
            raise DataError(f"{what}: cannot read (x, y) pairs from it ({type(e).__name__}: {e})") from None
    else:
        raise DataError(
            f"{what} must be (x, y) tensors or a torch Dataset of (x, y) pairs, got {type(data).__name__}"
        )
    try:
        x = np.asarray(x.detach().cpu() if isinstance(x, torch.Tensor) else x, dtype=np.float32)
        y = np.asarray(y.detach().cpu() if isinstance(y, torch.Tensor) else y)
    except (TypeError, ValueError) as e:
        raise DataError(f"{what}: inputs must be numbers ({e})") from None
    if x.ndim < 2 or y.ndim != 1 or len(x) != len(y) or len(y) < 1:
        raise DataError(
            f"{what}: need inputs [N, ...] and labels [N] with N >= 1, got {list(x.shape)} and {list(y.shape)}"
        )
    if not np.issubdtype(y.dtype, np.integer) or y.min() < 0:
        raise DataError(f"{what}: labels must be integers >= 0 (class indices)")
    return x, y.astype(np.int64)


def given_data(data: object, seed: int, fingerprint: str, what: str) -> Dataset:
    """The user's ``data`` for a stored run whose data had ``fingerprint`` (``Dataset.fingerprint``): other
    data is a one-line ``DataError`` naming both, so a resume never mixes two datasets in one run."""
    ds = as_dataset(data, seed)
    if fingerprint and ds.fingerprint() != fingerprint:
        raise DataError(
            f"{what} was made on data with fingerprint {fingerprint}, the data given has {ds.fingerprint()}:"
            " resume with the run's own data, or start a new run"
        )
    return ds


def as_dataset(data: object, seed: int = 0, *, num_classes: int | None = None) -> Dataset:
    """The user's data as a ``Dataset`` (named ``tensors``): a ``Dataset`` as it is; ``(x, y)`` tensors or a
    torch ``Dataset`` of pairs split by a fixed permutation (numpy seed 0) into test (the last ``HELD_OUT``
    of the samples, at least one) and the rest, of which ``seed`` carves ``HELD_OUT`` for validation, as a
    built-in dataset's; or three of them, ``(train, val, test)``, taken as they are. Inputs ``[N, C, H, W]``
    are stored flat with ``input_shape`` (C, H, W); classes are ``max(y) + 1`` unless given."""
    if isinstance(data, Dataset):
        return data
    if isinstance(data, tuple | list) and len(data) == 3:
        parts = [_arrays(d, f"data split {i + 1} of 3") for i, d in enumerate(data)]
        shape = parts[0][0].shape[1:]
        if any(p[0].shape[1:] != shape for p in parts):
            raise DataError(
                f"data splits have samples of different shapes: {[list(p[0].shape[1:]) for p in parts]}"
            )
        classes = num_classes or int(max(p[1].max() for p in parts)) + 1
        t = [
            torch.from_numpy(np.ascontiguousarray(a))
            for p in parts
            for a in (p[0].reshape(len(p[0]), -1), p[1])
        ]
        return Dataset(TENSORS, *t, classes, shape if len(shape) > 1 else ())
    x, y = _arrays(data, "data")
    shape = x.shape[1:]
    classes = num_classes or int(y.max()) + 1
    if len(y) < 3:
        raise DataError(f"data: need at least 3 samples (train, validation, test), got {len(y)}")
    order = np.random.default_rng(0).permutation(len(y))
    n_test = max(1, round(HELD_OUT * len(y)))
    test, rest = order[len(y) - n_test :], order[: len(y) - n_test]
    flat = x.reshape(len(x), -1)
    n_val = max(1, round(HELD_OUT * len(rest)))
    return _split(
        TENSORS,
        flat[rest],
        y[rest],
        flat[test],
        y[test],
        n_val,
        seed,
        classes,
        shape if len(shape) > 1 else (),
    )


DATASETS: dict[str, Callable[[int, str | Path | None], Dataset]] = {
    "mnist1d": _load_mnist1d,
    "mnist": _load_mnist,
    "digits": _load_digits,
    "synthetic": _load_synthetic,
    "cifar10": _load_cifar10,
    TENSORS: _load_tensors,
}
assert tuple(DATASETS) == settings.DATASETS, "settings.DATASETS names the loaders"


def load_dataset(name: str, seed: int = 0, *, data_dir: str | Path | None = None) -> Dataset:
    """Load a built-in dataset; ``seed`` picks the validation split, ``data_dir`` locates MNIST and CIFAR-10."""
    return DATASETS[check_dataset_name(name)](seed, data_dir)


def check_dataset_name(name: str) -> str:
    if name not in DATASETS:
        raise DataError(f"unknown dataset '{name}' (known: {', '.join(DATASETS)})")
    return name
