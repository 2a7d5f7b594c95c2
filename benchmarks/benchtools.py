"""What several benchmarks share: best-of-n wall-clock timing, and a module run from an older commit's
source (the baseline a benchmark compares today's code against, in the same process).

The benchmarks are scripts (``python benchmarks/NAME.py``): Python puts this folder first on the path, so
they import this module as ``benchtools``.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import time
import types
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


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


def module_at(commit: str, path: str, name: str) -> types.ModuleType:
    """``path`` of ``commit``, read with ``git show`` and run as a fresh module ``name`` (registered in
    ``sys.modules`` before it runs: its dataclasses look their module up there)."""
    source = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{commit}:{path}"], capture_output=True, text=True, check=True
    ).stdout
    spec = importlib.util.spec_from_loader(name, loader=None)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    exec(compile(source, f"{commit}:{path}", "exec"), module.__dict__)
    return module
