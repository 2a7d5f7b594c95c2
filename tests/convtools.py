"""Shared by the convnet tests: one torch thread while a convnet trains, CIFAR-10 files written in the
exact format of its python batches, and random masks of small convnets.

On this 2-core machine shared with other jobs, a conv step on two contended threads ran about 10x slower
than on one (0.47 s against 37 ms for the MNIST-1D CNN at batch 128); the evaluators train on one thread too.
"""

import pickle
import shutil
import tarfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from lotterysearch.core.masks import Mask
from lotterysearch.core.models import build_model


@pytest.fixture
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def cifar_batch(n: int, seed: int, labels: list[int] | None = None) -> dict:
    """One batch as the CIFAR-10 python pickles hold it: bytes keys, uint8 rows of R, G, B planes."""
    rng = np.random.default_rng(seed)
    return {
        b"batch_label": f"batch {seed}".encode(),
        b"labels": labels if labels is not None else [int(v) for v in rng.integers(0, 10, n)],
        b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
        b"filenames": [f"img{seed}_{i}.png".encode() for i in range(n)],
    }


def write_cifar(root: Path, per_batch: int = 4, archive: bool = False, **damage: object) -> Path:
    """``root/cifar-10-batches-py/`` (or ``root/cifar-10-python.tar.gz``) with 5 training batches and a test
    batch of ``per_batch`` images; ``damage`` replaces a file's pickled dict or its bytes."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for seed, name in enumerate(names):
        if damage.get(name) == "missing":
            continue
        content = damage.get(name, cifar_batch(per_batch, seed))
        raw = content if isinstance(content, bytes) else pickle.dumps(content, protocol=2)
        (folder / name).write_bytes(raw)
    meta = {
        b"label_names": [
            c.encode() for c in "airplane automobile bird cat deer dog frog horse ship truck".split()
        ]
    }
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    if not archive:
        return folder
    with tarfile.open(root / "cifar-10-python.tar.gz", "w:gz") as tar:
        tar.add(folder, arcname="cifar-10-batches-py")
    shutil.rmtree(folder)
    return root / "cifar-10-python.tar.gz"


def conv_shapes(spec: str) -> dict[str, tuple[int, ...]]:
    """The prunable layers' shapes of the convnet ``spec`` (e.g. ``conv:6x6x1:3-4-M:5-3``)."""
    return Mask.ones(build_model(spec, 0)).shapes


def random_conv_mask(rng: np.random.Generator, spec: str, density: float) -> Mask:
    """Every kernel entry and fc weight kept with probability ``density``."""
    return Mask({n: rng.random(s) < density for n, s in conv_shapes(spec).items()})
