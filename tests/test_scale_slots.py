"""The scale benchmark's simulated cluster hands out call slots as the Ray pool does."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).parents[1] / "benchmarks"
# scale imports benchtools from beside it, as ``python benchmarks/scale.py`` finds it
sys.path.append(str(BENCHMARKS))
SPEC = importlib.util.spec_from_file_location("scale", BENCHMARKS / "scale.py")
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


def test_the_simulated_clusters_idle_time_is_split_by_cause_and_adds_up() -> None:
    """Three 1 s jobs on two workers: worker 0 runs two back to back, worker 1 one and then waits for the
    run's end. Busy 3 s, idle after a last call about 1 s, waiting for a job about none (only the driver's
    own microseconds between calls), and the three add up to workers × makespan."""
    import numpy as np

    from lotterysearch.core.masks import Mask

    prof = scale.Profiler(scale.CLOCK)
    sim = scale.SimCluster(2, scale.Latency(1.0), prof, scale.Memo(), scale.Memo(), 100, {"w": (2, 2)})
    prof.clock = sim.driver_clock
    mask = Mask({"w": np.ones((2, 2), dtype=bool)})
    sim.start()
    results = [r.key for group in sim.evaluate_ready([(k, mask) for k in "abc"]) for r in group]
    makespan = sim.finish()
    assert sorted(results) == ["a", "b", "c"]
    assert sim.busy == 3.0 and 2.0 <= makespan < 2.05
    assert 0.0 <= sim.starved < 0.05 and abs(sim.tail - 1.0) < 0.05
    assert abs(sim.busy + sim.starved + sim.tail - 2 * makespan) < 1e-9
