"""The Dask task: one population trained in a child process on a worker, made of one or more
trials' seeds (all seeds of a trial, one seed, or several same-shaped trials packed together).

`run_seeds` takes and returns plain data and never submits work. Events go back to the driver
through the worker's structured-event channel (`Worker.log_event`, read by
`Client.subscribe_topic`), in batches (`sweeps.outbox`): each message is a list of events. A
stop request comes in per trial through a named `distributed.Event` and stops only that
trial's members. `run_child` holds the process
handling and is usable without Dask.

The child process is warm when it can be (`sweeps.warm`): a worker runs its next task in the
process its last task used (TensorFlow already imported) when nothing fixed at start-up differs,
and the study's `resources.reuse_processes` allows it; a process that crashed, hung or timed out
is never reused.

The child gets an allowlisted environment (`sweeps.security.child_environment`, plus the
study's `resources.env`) and TensorFlow thread pools sized to the cores this worker may use
(CPU affinity and cgroup quota, shared among the task slots of its host).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import queue
import shutil
import signal
import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from pathlib import Path
from typing import Any

from sweeps.cores import auto_threads, available_cores
from sweeps.outbox import Outbox
from sweeps.security import child_environment, env_secrets, scrub_secrets
from sweeps.warm import ChildProcess, ProcessPool, process_key, worker_processes

ENTRY = "dqn_tf:train_population"  # (configs, on_event, checkpoint_dir) -> [TrainResult]
STOP_POLL_S = 0.5
# Variables the task sets itself, from resources.cpu_threads and resources.gpus.
SET_BY_TASK = ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS", "CUDA_VISIBLE_DEVICES",
               "PYTHONUNBUFFERED")


def run_seeds(payload: dict[str, Any]) -> dict[str, Any]:
    """Dask entry point. `payload`: configs (one per population member, in the order of
    `parts`: [[trial, [seeds]], ...]), topic, stop_events ({trial: event name}), gpus,
    cpu_threads ("auto" or int), time_limit, entry, run_dir, checkpoint (a path under run_dir),
    env (the study's `resources.env`: more of the worker's variables for the child),
    interrupt_event (set by a driver's Ctrl-C: the checkpoint stays for the re-queued trial),
    processes ({"max_tasks", "max_rss_mb"}: reuse warm processes within these limits; missing
    or None: a fresh process for this task only). Returns `run_child`'s outcome."""
    from distributed import Event, get_client, get_worker

    from sweeps.devices import worker_pool

    worker, client = get_worker(), get_client()
    members = [(trial, seed) for trial, seeds in payload["parts"] for seed in seeds]
    # Bind the worker's client here, in the task thread: the relay thread could not find it.
    stops = {int(trial): Event(name, client=client) for trial, name in payload["stop_events"].items()}

    def stopped_members() -> list[int]:
        stopped = {trial for trial, event in stops.items() if event.is_set()}
        return [k for k, (trial, _) in enumerate(members) if trial in stopped]

    threads = payload.get("cpu_threads", "auto")
    if threads == "auto":
        threads = auto_threads(available_cores(), host_slots(worker.host, all_workers(client)))
    pool = worker_pool(int(worker.state.total_resources.get("GPU", 0)))
    checkpoint_dir = shared_checkpoint_dir(payload.get("run_dir"), payload.get("checkpoint"))
    limits = payload.get("processes")
    reuse = Reuse(worker_processes(worker), limits["max_tasks"], limits.get("max_rss_mb")) if limits else None

    def emit(event: dict[str, Any]) -> None:
        if event.get("event") == "progress":  # ~100 per member per trial, and the driver needs none
            return
        trial, seed = members[event.get("member", 0)]
        outbox.add({**event, "trial": trial, "seed": seed})

    outbox = Outbox(functools.partial(worker.log_event, payload["topic"]))  # closed below, whatever happens
    outcome = None
    try:
        for trial, seeds in payload["parts"]:  # a scheduler may rerun a lost task itself: the driver counts starts
            outbox.add({"trial": trial, "seeds": seeds, "event": "started", "worker": worker.address}, lazy=True)
        with pool.lease(int(payload.get("gpus", 0))) as gpu_ids:
            outcome = run_child(
                payload["configs"],
                emit=emit,
                stopped_members=stopped_members,
                threads=int(threads),
                gpu_ids=gpu_ids,
                time_limit=payload.get("time_limit"),
                entry=payload.get("entry") or ENTRY,
                checkpoint_dir=checkpoint_dir,
                env=payload.get("env") or (),
                reuse=reuse,
            )
    finally:  # every event goes before the outcome, unless the outcome carries them all
        outbox.close(carried=("eval",) if carries_evals(outcome, len(members)) else ())
    interrupted = payload.get("interrupt_event") and Event(payload["interrupt_event"], client=client).is_set()
    if checkpoint_dir is not None and not interrupted:  # the run ended here: nothing left to resume
        shutil.rmtree(checkpoint_dir, ignore_errors=True)
        with contextlib.suppress(OSError):  # the trial's folder, once its last run is done
            Path(checkpoint_dir).parent.rmdir()
    if outcome["results"]:
        outcome["results"] = [{**result, "episodes": as_columns(result.get("episodes") or [])}
                              for result in outcome["results"]]
    return {**outcome, "parts": payload["parts"], "worker": worker.address}


def as_columns(rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """Rows as {column: values}: a result's hundreds of episodes cost the driver a third as much
    to read and to log this way (`sweeps.tables` writes either form)."""
    keys = dict.fromkeys(key for row in rows for key in row)
    return {key: [row.get(key) for row in rows] for key in keys}


def carries_evals(outcome: dict[str, Any] | None, members: int) -> bool:
    """Whether `outcome` holds every member's evaluations (each member's result does): then the
    driver takes those still queued from it (`sweeps.driver`), and they need no message."""
    return outcome is not None and outcome["status"] == "ok" and len(outcome["results"] or ()) == members


def shared_checkpoint_dir(run_dir: str | None, checkpoint: str | None) -> str | None:
    """`run_dir/checkpoint` when this worker sees the driver's run folder (same machine or a
    shared filesystem), so that a rerun after a lost worker resumes; else None (no checkpoints)."""
    if not run_dir or not checkpoint or not Path(run_dir).is_dir():
        return None
    return str(Path(run_dir) / checkpoint)


def all_workers(client) -> list[dict[str, Any]]:
    """Every worker's scheduler record. distributed 2025.5 to 2026.6 return only the first 5
    unless asked for all (`n_workers=-1`; older versions ignore the argument)."""
    return list(client.scheduler_info(n_workers=-1)["workers"].values())


def host_slots(host: str, workers: Iterable[Mapping[str, Any]]) -> int:
    """Task slots (worker threads) on `host`: the trials it may run at once."""
    return sum(info.get("nthreads", 1) for info in workers if info.get("host") == host)


def child_env(threads: int, gpu_ids: list[str], names: Iterable[str] = (),
              environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment of the child: the worker's allowlisted variables and those the study names
    (`names`), TF pools sized to our cores, only our GPUs visible."""
    env = child_environment(os.environ if environ is None else environ, names)
    env.update(
        TF_NUM_INTRAOP_THREADS=str(threads),
        TF_NUM_INTEROP_THREADS=str(threads),
        OMP_NUM_THREADS=str(threads),
        CUDA_VISIBLE_DEVICES=",".join(gpu_ids),
        PYTHONUNBUFFERED="1",
    )
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


@dataclasses.dataclass(frozen=True)
class Reuse:
    """Warm processes for a task: where they come from, and when one is retired rather than
    kept for the worker's next task (`resources.max_tasks_per_process`, `max_process_rss_mb`)."""

    pool: ProcessPool
    max_tasks: int
    max_rss_mb: float | None = None

    def keeps(self, tasks: int, rss_mb: float | None) -> bool:
        return tasks < self.max_tasks and (self.max_rss_mb is None or (rss_mb or 0.0) < self.max_rss_mb)


def run_child(
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
) -> dict[str, Any]:
    """Train `configs` as one population in a `python -m sweeps.child` process; relay its
    events and the stops of members (indices into `configs`) that `stopped_members` names;
    enforce the time limit. `env`: names of more worker variables the child gets
    (`resources.env`). `reuse`: take the process from a pool of warm ones and give it back
    after a clean result (None: a fresh process, ended after this task).

    Returns {"status": "ok" | "failed", "results" (one per config, None when failed), "reason",
    "startup_seconds" (until the child is ready for this task), "wall_seconds", "process_pid",
    "process_reused", "process_tasks" (this one included), "process_rss_mb" (after the task)};
    never raises for a trainer failure.
    Whether a member diverged or stopped early is in its result (see `member_failure`). The
    reason never holds the worker's secret-looking values (it goes to tables and reports).
    """
    started = time.perf_counter()
    key = process_key(child_env(threads, gpu_ids or [], env), configs)
    child, reused = reuse.pool.acquire(key) if reuse else (ChildProcess(key), False)
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
    outcome = {
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
        return {**outcome, "status": "ok"}
    return {**outcome, "status": "failed", "reason": scrub_secrets(reason, env_secrets(os.environ))}


TIMED_OUT = {"type": "timeout"}
POLL_S = 1.0  # how often a quiet child is checked for having died


def follow(child: ChildProcess, emit: Callable[[dict[str, Any]], None], deadline: float | None,
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


def member_failure(result: dict[str, Any]) -> str | None:
    """Why one member's run fails a trial that was not pruned: it diverged or stopped early."""
    if result.get("diverged"):
        return result.get("stop_reason") or "diverged"
    if result.get("stopped_early"):
        return f"stopped early: {result.get('stop_reason')}"
    return None


def process_attrs(outcomes: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """How a trial's tasks started, for its trial attributes: `process_reused` (every task ran in
    a process that had served tasks before: no start-up paid), `process_tasks` (the most tasks
    one of its processes had run, its own included) and `process_rss_mb` (the largest RSS after
    one of its tasks). {} when no task reported (e.g. all were lost with their worker)."""
    runs = [o for o in outcomes if o.get("process_tasks")]
    if not runs:
        return {}
    sizes = [o["process_rss_mb"] for o in runs if o.get("process_rss_mb") is not None]
    return {
        "process_reused": all(o["process_reused"] for o in runs),
        "process_tasks": max(o["process_tasks"] for o in runs),
        "process_rss_mb": float(max(sizes)) if sizes else None,
    }


def relay_stops(
    child: ChildProcess, stopped_members: Callable[[], Collection[int]], members: int, done: threading.Event
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
