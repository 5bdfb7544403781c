"""A task's trial process, supervised: the request sent, its events relayed, stops forwarded,
the time limit enforced, and how it ended read as an outcome (plain data). Usable without Dask.

The process is warm when it can be (`sweeps.worker.processes`): taken from the worker's pool and
given back after a clean result; a process that crashed, hung or timed out is never reused.
"""

from __future__ import annotations

import dataclasses
import os
import queue
import signal
import threading
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Any

from sweeps.secrets import env_secrets, scrub
from sweeps.worker.environment import child_env
from sweeps.worker.outcome import Outcome
from sweeps.worker.processes import ProcessPool, TrialProcess, process_key

ENTRY = "dqn_tf:train_population"  # (configs, on_event, checkpoint_dir) -> [TrainResult]
STOP_POLL_S = 0.5


@dataclasses.dataclass(frozen=True)
class Reuse:
    """Warm processes for a task: where they come from, and when one is retired rather than
    kept for the worker's next task (`resources.max_tasks_per_process`, `max_process_rss_mb`)."""

    pool: ProcessPool
    max_tasks: int
    max_rss_mb: float | None = None

    def keeps(self, tasks: int, rss_mb: float | None) -> bool:
        return tasks < self.max_tasks and (self.max_rss_mb is None or (rss_mb or 0.0) < self.max_rss_mb)


def train_in_child(
    configs: list[dict[str, Any]],
    *,
    emit: Callable[[dict[str, Any]], None],
    stopped_members: Callable[[], Collection[int]],
    threads: int = 1,
    gpu_ids: list[str] | None = None,
    time_limit: float | None = None,
    entry: str = ENTRY,
    checkpoint_dir: str | None = None,
    env: Iterable[str] = (),
    reuse: Reuse | None = None,
    python_path: Sequence[str] = (),
) -> Outcome:
    """Train `configs` as one population in a `python -m sweeps.worker.child` process; relay its
    events and the stops of members (indices into `configs`) that `stopped_members` names;
    enforce the time limit. `env`: names of more worker variables the child gets
    (`resources.env`). `reuse`: take the process from a pool of warm ones and give it back
    after a clean result (None: a fresh process, ended after this task). `python_path`: folders
    and archives put ahead of the child's PYTHONPATH (the worker's uploaded code).

    Returns an `Outcome` ("ok" with one result per config, or "failed" with the reason); never
    raises for a trainer failure. Whether a member diverged or stopped early is in its result.
    The reason never holds the worker's secret-looking values (it goes to tables and reports).
    """
    started = time.perf_counter()
    key = process_key(child_env(threads, gpu_ids or [], env, python_path=python_path), configs)
    child, reused = reuse.pool.acquire(key) if reuse else (TrialProcess(key), False)
    request = {"configs": configs, "entry": entry, "checkpoint_dir": checkpoint_dir}
    if not child.request(request) and reused:  # it died while idle: not this task's fault
        child, reused = reuse.pool.replace(child), False
        child.request(request)
    done = threading.Event()
    threading.Thread(target=relay_stops, args=(child, stopped_members, len(configs), done), daemon=True).start()
    ending, startup, rss_mb, keep = None, None, None, False
    try:
        ending, startup = follow(child, emit, None if time_limit is None else started + time_limit, started)
        rss_mb = child.rss_mb()
        # a trainer exception may leave TensorFlow half-initialised: only a result or a config error is clean
        clean = ending is not None and (ending["type"] == "results" or ending.get("kind") == "config")
        keep = clean and reuse is not None and reuse.keeps(child.tasks, rss_mb)
    finally:
        done.set()
        if ending is TIMED_OUT or not child.alive:
            child.kill()
        if reuse is not None:
            reuse.pool.release(child, keep)
        elif child.alive:
            child.close()
    outcome: Outcome = {
        "status": "ok",
        "startup_seconds": startup,
        "wall_seconds": time.perf_counter() - started,
        "results": ending.get("results") if ending else None,
        "reason": None,
        "process_pid": child.pid,
        "process_reused": reused,
        "process_tasks": child.tasks,
        "process_rss_mb": rss_mb,
    }
    if ending is TIMED_OUT:
        return {**outcome, "status": "failed", "results": None, "reason": f"timeout after {time_limit:g} s"}
    if ending is not None and ending["type"] == "error":
        reason = f"{ending['kind']}: {ending['message']}"
    elif outcome["results"] is None:
        reason = exit_reason(child.proc.returncode, child.stderr_tail())
    else:
        return outcome
    return {**outcome, "status": "failed", "reason": scrub(reason, env_secrets(os.environ))}


TIMED_OUT = {"type": "timeout"}
POLL_S = 1.0  # how often a quiet child is checked for having died


def follow(child: TrialProcess, emit: Callable[[dict[str, Any]], None], deadline: float | None,
           started: float) -> tuple[dict[str, Any] | None, float | None]:
    """Relay the task's events until its results or error (or TIMED_OUT at `deadline`, or
    None when the process ended first); also returns the seconds from `started` until the
    child said it was ready for the task.

    A dead child is noticed by its exit, not only by its stdout closing: a process it forked
    may hold that pipe open."""
    startup = None
    while True:
        wait = POLL_S if deadline is None else min(POLL_S, max(0.0, deadline - time.perf_counter()))
        try:
            message = child.messages.get(timeout=wait)
        except queue.Empty:
            if deadline is not None and time.perf_counter() >= deadline:
                return TIMED_OUT, startup
            if child.alive:
                continue
            message = None  # what it wrote before dying has been read by now
        if message is None:
            child.proc.wait()
            return None, startup
        if message.get("type") == "event":
            emit(message["event"])
        elif message.get("type") == "started":
            startup = time.perf_counter() - started
        elif message.get("type") in ("results", "error"):
            return message, startup


def relay_stops(
    child: TrialProcess, stopped_members: Callable[[], Collection[int]], members: int, done: threading.Event
) -> None:
    """Forward stop requests to the child's current task ("stop TASK 0,1 pruned"); each member
    stops cleanly after its next event.

    Polls (a short scheduler call every STOP_POLL_S) rather than blocking in `Event.wait`,
    so that no wait is left pending on the scheduler when the run ends or the cluster closes.
    """
    task, sent = child.tasks, set()
    while len(sent) < members and not done.wait(STOP_POLL_S):
        try:
            new = set(stopped_members()) - sent
        except (OSError, TimeoutError):  # scheduler briefly unreachable: keep training, retry
            continue
        except AttributeError:  # the worker's client is closing: stdin EOF will stop the child
            return
        if not new:
            continue
        sent |= new
        if not child.stop(task, sorted(new), "pruned"):
            return


def exit_reason(returncode: int | None, tail: str) -> str:
    """Why a child ended without a result: exit status or signal, and its last stderr lines."""
    if returncode is not None and returncode < 0:
        status = f"killed by signal {signal.Signals(-returncode).name}"
    else:
        status = f"exited with status {returncode}"
    return f"child {status}" + (f"; stderr tail:\n{tail}" if tail else "")
