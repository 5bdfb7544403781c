"""Worker-side GPU-id pool: concurrent trials on one worker get distinct GPU ids.

Dask resources (`--resources GPU=N`) only count; they do not say *which* GPU a task may use.
Each worker process keeps one pool of ids (from its `CUDA_VISIBLE_DEVICES`, else 0..N-1) and
lends them to trials, which pin them in their child's `CUDA_VISIBLE_DEVICES`.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager


class DevicePool:
    """A thread-safe pool of device ids; `lease(k)` hands out k ids no one else holds."""

    def __init__(self, ids: Sequence[str]):
        self._all = list(ids)
        self._free = list(ids)
        self._changed = threading.Condition()

    @property
    def size(self) -> int:
        return len(self._all)

    def acquire(self, count: int, timeout: float | None = 60.0) -> list[str]:
        """Take `count` ids, waiting up to `timeout` s for them to be released."""
        if count > len(self._all):
            raise RuntimeError(
                f"a trial asks for {count} GPUs but this worker has {len(self._all)} "
                f"({','.join(self._all) or 'none'}); start workers with --resources GPU=N"
            )
        with self._changed:
            if not self._changed.wait_for(lambda: len(self._free) >= count, timeout):
                raise RuntimeError(f"no {count} free GPU ids on this worker after {timeout} s")
            taken, self._free = self._free[:count], self._free[count:]
            return taken

    def release(self, ids: Sequence[str]) -> None:
        with self._changed:
            # first in line for the next lease: its trial can reuse the warm process pinned to them
            self._free[:0] = [i for i in ids if i in self._all and i not in self._free]
            self._changed.notify_all()

    @contextmanager
    def lease(self, count: int) -> Iterator[list[str]]:
        ids = self.acquire(count) if count else []
        try:
            yield ids
        finally:
            self.release(ids)


_pool: DevicePool | None = None
_pool_lock = threading.Lock()


def worker_pool(gpu_count: int) -> DevicePool:
    """This process's pool, created on first use from `CUDA_VISIBLE_DEVICES` or 0..N-1."""
    global _pool
    with _pool_lock:
        if _pool is None:
            visible = [d for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
            _pool = DevicePool(visible[:gpu_count] if len(visible) >= gpu_count else [str(i) for i in range(gpu_count)])
        return _pool
