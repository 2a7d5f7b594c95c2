"""What several benchmarks share: best-of-n wall-clock timing.

The benchmarks are scripts (``python benchmarks/NAME.py``): Python puts this folder first on the path, so
they import this module as ``benchtools``.
"""

from __future__ import annotations

import time
from collections.abc import Callable


def best_of(repeats: int, fn: Callable[[], object], *, warm_up: bool = False) -> float:
    """Least wall-clock seconds of ``repeats`` calls of ``fn`` (the least is the one other jobs on the
    machine disturbed least); ``warm_up`` makes one untimed call first (allocator, caches, lazy imports)."""
    if warm_up:
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)
