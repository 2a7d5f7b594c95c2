"""The scale benchmark's simulated cluster hands out call slots as the Ray pool does."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

SPEC = importlib.util.spec_from_file_location("scale", Path(__file__).parents[1] / "benchmarks" / "scale.py")
scale = importlib.util.module_from_spec(SPEC)
sys.modules["scale"] = scale  # its dataclasses look their module up while the file runs
SPEC.loader.exec_module(scale)


def test_every_idle_worker_gets_a_call_before_any_worker_its_second() -> None:
    slots = scale.Slots(3, 2)
    assert [slots.take() for _ in range(4)] == [0, 1, 2, 0]  # first calls to all, then a second to 0
    slots.release(1)  # worker 1 is idle again: it goes before workers 1 and 2's second slots
    assert slots.take() == 1 and slots.calls == [2, 1, 1]
    slots.release(0)
    slots.release(0)
    assert slots.take() == 0  # idle worker 0 before the second slots of 2 and 1
    assert [slots.take() for _ in range(3)] == [2, 1, 0] and not slots
    assert slots.calls == [2, 2, 2]
