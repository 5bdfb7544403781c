"""The Dask task: one population trained in a child process on a worker, made of one or more
trials' seeds (all seeds of a trial, one seed, or several same-shaped trials packed together).

`run_seeds` takes and returns plain data and never submits work. Events go back to the driver
through the worker's structured-event channel (`Worker.log_event`, read by
`Client.subscribe_topic`); a stop request comes in per trial through a named
`distributed.Event` and stops only that trial's members. `run_child` holds the process
handling and is usable without Dask.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Iterable
from pathlib import Path
from typing import Any

ENTRY = "dqn_tf:train_population"  # (configs, on_event, checkpoint_dir) -> [TrainResult]
STDERR_TAIL_LINES = 20
STOP_POLL_S = 0.5


def run_seeds(payload: dict[str, Any]) -> dict[str, Any]:
    """Dask entry point. `payload`: configs (one per population member, in the order of
    `parts`: [[trial, [seeds]], ...]), topic, stop_events ({trial: event name}), gpus,
    cpu_threads ("auto" or int), time_limit, entry, run_dir, checkpoint (a path under run_dir).
    Returns `run_child`'s outcome."""
    from distributed import Event, get_client, get_worker

    from sweeps.devices import worker_pool

    worker, client = get_worker(), get_client()
    members = [(trial, seed) for trial, seeds in payload["parts"] for seed in seeds]
    for trial, seeds in payload["parts"]:  # counted by the driver: a scheduler may rerun a lost task itself
        worker.log_event(payload["topic"], {"trial": trial, "seeds": seeds, "event": "started", "worker": worker.address})
    # Bind the worker's client here, in the task thread: the relay thread could not find it.
    stops = {int(trial): Event(name, client=client) for trial, name in payload["stop_events"].items()}

    def stopped_members() -> list[int]:
        stopped = {trial for trial, event in stops.items() if event.is_set()}
        return [k for k, (trial, _) in enumerate(members) if trial in stopped]

    def emit(event: dict[str, Any]) -> None:
        trial, seed = members[event.get("member", 0)]
        worker.log_event(payload["topic"], {**event, "trial": trial, "seed": seed})

    threads = payload.get("cpu_threads", "auto")
    if threads == "auto":
        threads = auto_threads(worker.host, client.scheduler_info()["workers"].values())
    pool = worker_pool(int(worker.state.total_resources.get("GPU", 0)))
    checkpoint_dir = shared_checkpoint_dir(payload.get("run_dir"), payload.get("checkpoint"))
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
        )
    if checkpoint_dir is not None:  # the run ended here: nothing left to resume
        shutil.rmtree(checkpoint_dir, ignore_errors=True)
        with contextlib.suppress(OSError):  # the trial's folder, once its last run is done
            Path(checkpoint_dir).parent.rmdir()
    return {**outcome, "parts": payload["parts"], "worker": worker.address}


def shared_checkpoint_dir(run_dir: str | None, checkpoint: str | None) -> str | None:
    """`run_dir/checkpoint` when this worker sees the driver's run folder (same machine or a
    shared filesystem), so that a rerun after a lost worker resumes; else None (no checkpoints)."""
    if not run_dir or not checkpoint or not Path(run_dir).is_dir():
        return None
    return str(Path(run_dir) / checkpoint)


def auto_threads(host: str, workers: Iterable[dict[str, Any]]) -> int:
    """This host's cores shared evenly among all task slots of the workers on this host."""
    slots = sum(info.get("nthreads", 1) for info in workers if info.get("host") == host)
    return max(1, (os.cpu_count() or 1) // max(1, slots))


def child_env(threads: int, gpu_ids: list[str]) -> dict[str, str]:
    """Environment of the child: TF pools sized to our cores, only our GPUs visible."""
    env = dict(os.environ)
    env.update(
        TF_NUM_INTRAOP_THREADS=str(threads),
        TF_NUM_INTEROP_THREADS=str(threads),
        OMP_NUM_THREADS=str(threads),
        CUDA_VISIBLE_DEVICES=",".join(gpu_ids),
        PYTHONUNBUFFERED="1",
    )
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


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
) -> dict[str, Any]:
    """Train `configs` as one population in `python -m sweeps.child`; relay its events and
    the stops of members (indices into `configs`) that `stopped_members` names; enforce the
    time limit.

    Returns {"status": "ok" | "failed", "results" (one per config, None when failed), "reason",
    "returncode", "startup_seconds", "wall_seconds"}; never raises for a trainer failure.
    Whether a member diverged or stopped early is in its result (see `member_failure`).
    """
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "sweeps.child"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(threads, gpu_ids or []),
        start_new_session=True,  # a kill reaches the whole child group, not the worker
    )
    proc.stdin.write(json.dumps({"configs": configs, "entry": entry, "checkpoint_dir": checkpoint_dir}) + "\n")
    proc.stdin.flush()
    messages: dict[str, Any] = {}
    tail: deque[str] = deque(maxlen=STDERR_TAIL_LINES)
    done = threading.Event()
    readers = [
        threading.Thread(target=read_protocol, args=(proc.stdout, emit, messages, started), daemon=True),
        threading.Thread(target=tail.extend, args=(proc.stderr,), daemon=True),
    ]
    for thread in readers:
        thread.start()
    threading.Thread(target=relay_stops, args=(proc, stopped_members, len(configs), done), daemon=True).start()
    timed_out = False
    try:
        proc.wait(timeout=time_limit)
    except subprocess.TimeoutExpired:
        timed_out = True
        kill_group(proc)
    finally:
        done.set()
    for thread in readers:
        thread.join(timeout=5)
    outcome = {
        "returncode": proc.returncode,
        "startup_seconds": messages.get("startup_seconds"),
        "wall_seconds": time.perf_counter() - started,
        "results": messages.get("results"),
        "reason": None,
    }
    if timed_out:
        return {**outcome, "status": "failed", "results": None, "reason": f"timeout after {time_limit:g} s"}
    if "error" in messages:
        error = messages["error"]
        return {**outcome, "status": "failed", "reason": f"{error['kind']}: {error['message']}"}
    if outcome["results"] is None:
        return {**outcome, "status": "failed", "reason": exit_reason(proc.returncode, tail)}
    return {**outcome, "status": "ok"}


def member_failure(result: dict[str, Any]) -> str | None:
    """Why one member's run fails a trial that was not pruned: it diverged or stopped early."""
    if result.get("diverged"):
        return result.get("stop_reason") or "diverged"
    if result.get("stopped_early"):
        return f"stopped early: {result.get('stop_reason')}"
    return None


def read_protocol(stream, emit, messages: dict[str, Any], started: float) -> None:
    """Relay events as they come; keep the final result or error."""
    for line in stream:
        try:
            message = json.loads(line)
        except json.JSONDecodeError:
            continue
        kind = message.get("type")
        if kind == "event":
            emit(message["event"])
        elif kind == "started":
            messages["startup_seconds"] = time.perf_counter() - started
        elif kind == "results":
            messages["results"] = message["results"]
        elif kind == "error":
            messages["error"] = message


def relay_stops(
    proc: subprocess.Popen, stopped_members: Callable[[], Collection[int]], members: int, done: threading.Event
) -> None:
    """Forward stop requests to the child ("stop 0,1 pruned"); each member stops cleanly
    after its next event.

    Polls (a short scheduler call every STOP_POLL_S) rather than blocking in `Event.wait`,
    so that no wait is left pending on the scheduler when the run ends or the cluster closes.
    """
    sent: set[int] = set()
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
        try:
            proc.stdin.write(f"stop {','.join(map(str, sorted(new)))} pruned\n")
            proc.stdin.flush()
        except (BrokenPipeError, ValueError, OSError):
            return


def kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def exit_reason(returncode: int | None, tail: deque[str]) -> str:
    """Why a child ended without a result: exit status or signal, and its last stderr lines."""
    if returncode is not None and returncode < 0:
        status = f"killed by signal {signal.Signals(-returncode).name}"
    else:
        status = f"exited with status {returncode}"
    text = "".join(tail).strip()
    return f"child {status}" + (f"; stderr tail:\n{text}" if text else "")
