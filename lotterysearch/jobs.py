"""Long independent jobs (IMP rounds, confirmations): in this process or as Ray tasks, taken as they finish.

A job is ``fn(data, *args)`` for one module-level function ``fn`` and one dataset shared by every job (put in
Ray's object store once). The driver submits jobs and takes finished ones one at a time, so it can commit each
result and submit follow-up work (the next IMP round) while other jobs run. Torch runs on one thread per job,
as in the fitness evaluators, so a job's numbers are the same bits in process and on Ray.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Hashable
from typing import Any, Protocol

import torch

from lotterysearch.data import Dataset


class Jobs(Protocol):
    """What a driver needs: submit, take the next finished (key, result), count what is left, close."""

    def submit(self, key: Hashable, *args: Any) -> None: ...

    def next_done(self) -> tuple[Hashable, Any]: ...

    def pending(self) -> int: ...

    def close(self) -> None: ...


def on_one_thread(fn: Callable[..., Any], data: Dataset, *args: Any) -> Any:
    """``fn(data, *args)`` with torch on one thread, as every job runs: a convolution's sums (and so its bits)
    depend on the thread count."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return fn(data, *args)
    finally:
        torch.set_num_threads(before)


class LocalJobs:
    """Jobs run in this process, in the order submitted, when the driver asks for the next one."""

    def __init__(self, fn: Callable[..., Any], data: Dataset) -> None:
        self.fn, self.data = fn, data
        self._queue: deque[tuple[Hashable, tuple[Any, ...]]] = deque()

    def submit(self, key: Hashable, *args: Any) -> None:
        self._queue.append((key, args))

    def next_done(self) -> tuple[Hashable, Any]:
        key, args = self._queue.popleft()
        return key, on_one_thread(self.fn, self.data, *args)

    def pending(self) -> int:
        return len(self._queue)

    def close(self) -> None:
        self._queue.clear()


def _remote_call(fn: Callable[..., Any], arrays: list[Any], *args: Any) -> Any:
    import ray

    from lotterysearch.cluster import dataset_from_arrays

    return on_one_thread(fn, dataset_from_arrays(ray.get(arrays[0])), *args)


class RayJobs:
    """Jobs as Ray tasks (one CPU each, retried when a worker dies) on the cluster at ``address`` (see
    ``cluster.connect``); the dataset is put once and fetched by each task."""

    def __init__(
        self, fn: Callable[..., Any], data: Dataset, *, address: str | None = None, max_retries: int = 3
    ) -> None:
        import ray

        from lotterysearch.cluster import connect, dataset_arrays

        connect(address)
        self.fn = fn
        # Every split: unlike fitness, IMP rounds and confirmations read the test accuracy.
        test = {"x_test": data.x_test.detach().cpu().numpy(), "y_test": data.y_test.detach().cpu().numpy()}
        self._data = ray.put(dataset_arrays(data) | test)
        self._task = ray.remote(_remote_call).options(num_cpus=1, max_retries=max_retries)
        self._running: dict[Any, Hashable] = {}

    def submit(self, key: Hashable, *args: Any) -> None:
        self._running[self._task.remote(self.fn, [self._data], *args)] = key

    def next_done(self) -> tuple[Hashable, Any]:
        import ray

        (ref,), _ = ray.wait(list(self._running), num_returns=1)
        key = self._running.pop(ref)
        try:
            return key, ray.get(ref)
        except ray.exceptions.RayTaskError as e:
            from lotterysearch.errors import LotterySearchError

            cause = getattr(e, "cause", None)
            if isinstance(cause, LotterySearchError):
                raise cause from None
            raise

    def pending(self) -> int:
        return len(self._running)

    def close(self) -> None:
        import ray

        for ref in self._running:
            ray.cancel(ref, force=True)
        self._running.clear()
