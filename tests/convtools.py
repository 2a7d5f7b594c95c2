"""Shared by the convnet tests: one torch thread while a convnet trains.

On this 2-core machine shared with other jobs, a conv step on two contended threads ran about 10x slower
than on one (0.47 s against 37 ms for the MNIST-1D CNN at batch 128); the evaluators train on one thread too.
"""

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
