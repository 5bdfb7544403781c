"""Trial processes, and the worker's pool of warm ones: a worker keeps its
`python -m sweeps.worker.child` (TensorFlow imported) and runs its next task in it, instead of
paying seconds of start-up per task.

A process serves only tasks whose `ProcessKey` equals its own: everything fixed when it
started (its environment, so the same GPU ids, thread counts and study variables; and the
trainer's `devices`, because TensorFlow's logical devices can be set only once per process).
The task code (`sweeps.worker.supervise.train_in_child`) gives a process back only after a clean result, so a
crashed, hung, timed-out or killed process is never reused, and retires it after
`max_tasks_per_process` tasks or once its RSS reaches `max_process_rss_mb`.

Each Dask worker has one `ProcessPool` (`worker_processes`), holding at most as many processes
as the worker has task slots. The pool is closed, killing its processes, when the worker closes
(a worker plugin) or its Python process exits (atexit); if the worker dies harder than that, the
children see their stdin close and exit by themselves.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import json
import os
import queue
import signal
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Mapping
from typing import Any

import psutil

from sweeps.worker.child import TASK_MARKER

STDERR_TAIL_LINES = 20
CLOSE_WAIT_S = 5.0
PLUGIN_NAME = "sweeps-warm-processes"


@dataclasses.dataclass(frozen=True)
class ProcessKey:
    """What a process is started with and cannot change: its environment and TF devices."""

    env: tuple[tuple[str, str], ...]
    devices: str

    @property
    def gpu_ids(self) -> frozenset[str]:
        visible = dict(self.env).get("CUDA_VISIBLE_DEVICES", "")
        return frozenset(gpu for gpu in visible.split(",") if gpu)


def process_key(env: Mapping[str, str], configs: list[dict[str, Any]]) -> ProcessKey:
    """The key of a task training `configs` in a child with environment `env` (a population
    shares its `devices`, so the first config's stand for all)."""
    return ProcessKey(tuple(sorted(env.items())), json.dumps(configs[0].get("devices", "auto")))


class TrialProcess:
    """One running `python -m sweeps.worker.child`, warm or not: its pipes, the messages it sent and the tail of
    what it printed to stderr during the current task."""

    def __init__(self, key: ProcessKey):
        self.key = key
        self.tasks = 0
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sweeps.worker.child"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=dict(key.env),
            start_new_session=True,  # a kill reaches the whole child group, not the worker
        )
        self.messages: queue.Queue[dict[str, Any] | None] = queue.Queue()  # None: stdout closed
        self.tail: deque[str] = deque(maxlen=STDERR_TAIL_LINES)
        self._writing = threading.Lock()  # a stop relay and the next request never interleave
        self._readers = [threading.Thread(target=self._read_messages, daemon=True),
                         threading.Thread(target=self._read_stderr, daemon=True)]
        for reader in self._readers:
            reader.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def request(self, request: dict[str, Any]) -> bool:
        """Send the next task's request; False when the process no longer reads its stdin."""
        self.tasks += 1
        return self.write(json.dumps({**request, "task": self.tasks}))

    def stop(self, task: int, members: list[int], reason: str) -> bool:
        return self.write(f"stop {task} {','.join(map(str, members))} {reason}")

    def write(self, line: str) -> bool:
        with self._writing:
            try:
                self.proc.stdin.write(line + "\n")
                self.proc.stdin.flush()
            except (BrokenPipeError, ValueError, OSError):
                return False
        return True

    def rss_mb(self) -> float | None:
        """Resident memory now, in MiB (None once the process is gone)."""
        try:
            return psutil.Process(self.pid).memory_info().rss / 2**20
        except psutil.Error:
            return None

    def stderr_tail(self) -> str:
        """This task's last stderr lines, once the process has ended (all of them read)."""
        self._readers[1].join(timeout=5)
        return "".join(self.tail).strip()

    def kill(self) -> None:
        """SIGKILL the child's whole process group."""
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()

    def close(self) -> None:
        """End the process: close its stdin (it exits at once), kill it if it does not."""
        with self._writing, contextlib.suppress(BrokenPipeError, OSError, ValueError):
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=CLOSE_WAIT_S)
        except subprocess.TimeoutExpired:
            self.kill()

    def _read_messages(self) -> None:
        for line in self.proc.stdout:
            try:
                self.messages.put(json.loads(line))
            except json.JSONDecodeError:
                continue
        self.messages.put(None)

    def _read_stderr(self) -> None:
        for line in self.proc.stderr:
            if line == TASK_MARKER:
                self.tail.clear()  # what the previous task printed is not this task's reason
            else:
                self.tail.append(line)


class ProcessPool:
    """A worker's warm processes: idle ones by key, at most `capacity` processes in all.

    `acquire` hands out an idle process of the task's key, or starts one, first closing the
    idle processes that hold the task's GPU ids (they keep TensorFlow's GPU memory) and, when
    the pool is full, the least recently used idle one.
    """

    def __init__(self, capacity: int):
        self.capacity = max(1, capacity)
        self._idle: list[TrialProcess] = []  # least recently used first
        self._busy: set[TrialProcess] = set()
        self._lock = threading.Lock()
        self._closed = False

    def acquire(self, key: ProcessKey) -> tuple[TrialProcess, bool]:
        """(a process for a task of `key`, whether it served tasks before)."""
        with self._lock:
            if self._closed:
                raise RuntimeError("this worker is closing: it starts no more trial processes")
            retired = [child for child in self._idle if not child.alive]
            live = [child for child in self._idle if child.alive]
            warm = next((child for child in reversed(live) if child.key == key), None)
            if warm is not None:
                live.remove(warm)
            else:
                retired += [child for child in live if child.key.gpu_ids & key.gpu_ids]
                live = [child for child in live if child not in retired]
                while live and len(live) + len(self._busy) >= self.capacity:
                    retired.append(live.pop(0))
            self._idle = live
            for old in retired:  # first: a new process may need the GPU memory an old one holds
                old.close()
            child = warm or TrialProcess(key)
            self._busy.add(child)
        return child, warm is not None

    def release(self, child: TrialProcess, keep: bool) -> None:
        """Take `child` back as idle when `keep` (and the pool is open), else close it."""
        with self._lock:
            self._busy.discard(child)
            if keep and not self._closed and child.alive:
                self._idle.append(child)
                return
        child.close()

    def replace(self, child: TrialProcess) -> TrialProcess:
        """A fresh process in place of a busy one that died while idle (before its task)."""
        child.kill()
        fresh = TrialProcess(child.key)
        with self._lock:
            self._busy.discard(child)
            self._busy.add(fresh)
        return fresh

    def close(self) -> None:
        """Kill every process, busy or idle; start no more."""
        with self._lock:
            self._closed = True
            children, self._idle, self._busy = [*self._idle, *self._busy], [], set()
        for child in children:
            child.kill()


_pools: dict[str, ProcessPool] = {}  # by Dask worker id (in-process clusters share a process)
_pools_lock = threading.Lock()


def worker_processes(worker, slots: int) -> ProcessPool:
    """The pool of `worker` (a `distributed.Worker` with `slots` task threads), created on first
    use and closed with it."""
    with _pools_lock:
        pool = _pools.get(worker.id)
        if pool is not None:
            return pool
        atexit.unregister(close_pools)  # registered once
        atexit.register(close_pools)
        pool = _pools[worker.id] = ProcessPool(slots)
    from distributed.utils import sync

    sync(worker.loop, worker.plugin_add, _closer(worker.id), name=PLUGIN_NAME)
    return pool


def close_pools(worker_id: str | None = None) -> None:
    """Close one worker's pool, or all of them."""
    with _pools_lock:
        ids = list(_pools) if worker_id is None else [worker_id]
        pools = [_pools.pop(i) for i in ids if i in _pools]
    for pool in pools:
        pool.close()


def _closer(worker_id: str):
    """A worker plugin whose teardown (the worker closing) closes the worker's pool."""
    from distributed.diagnostics.plugin import WorkerPlugin

    class ClosePool(WorkerPlugin):
        def teardown(self, worker) -> None:
            close_pools(worker_id)

    return ClosePool()
