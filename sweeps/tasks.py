"""The Dask task: one population trained in a child process on a worker, made of one or more
trials' seeds (all seeds of a trial, one seed, or several same-shaped trials packed together).

`run_seeds` takes and returns plain data and never submits work. Events go back to the driver
through the worker's structured-event channel (`Worker.log_event`, read by
`Client.subscribe_topic`); a stop request comes in per trial through a named
`distributed.Event` and stops only that trial's members. `run_child` holds the process
handling and is usable without Dask.

The child gets an allowlisted environment (`sweeps.security.child_environment`, plus the
study's `resources.env`) and TensorFlow thread pools sized to the cores this worker may use
(CPU affinity and cgroup quota, shared among the task slots of its host).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Iterable, Mapping
from pathlib import Path
from typing import Any

from sweeps.security import child_environment, env_secrets, scrub_secrets

ENTRY = "dqn_tf:train_population"  # (configs, on_event, checkpoint_dir) -> [TrainResult]
STDERR_TAIL_LINES = 20
STOP_POLL_S = 0.5
CGROUP_ROOT = Path("/sys/fs/cgroup")
# Variables the task sets itself, from resources.cpu_threads and resources.gpus.
SET_BY_TASK = ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS", "CUDA_VISIBLE_DEVICES",
               "PYTHONUNBUFFERED")


def run_seeds(payload: dict[str, Any]) -> dict[str, Any]:
    """Dask entry point. `payload`: configs (one per population member, in the order of
    `parts`: [[trial, [seeds]], ...]), topic, stop_events ({trial: event name}), gpus,
    cpu_threads ("auto" or int), time_limit, entry, run_dir, checkpoint (a path under run_dir),
    env (the study's `resources.env`: more of the worker's variables for the child),
    interrupt_event (set by a driver's Ctrl-C: the checkpoint stays for the re-queued trial).
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
        threads = auto_threads(available_cores(), host_slots(worker.host, all_workers(client)))
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
            env=payload.get("env") or (),
        )
    interrupted = payload.get("interrupt_event") and Event(payload["interrupt_event"], client=client).is_set()
    if checkpoint_dir is not None and not interrupted:  # the run ended here: nothing left to resume
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


def all_workers(client) -> list[dict[str, Any]]:
    """Every worker's scheduler record. distributed 2025.5 to 2026.6 return only the first 5
    unless asked for all (`n_workers=-1`; older versions ignore the argument)."""
    return list(client.scheduler_info(n_workers=-1)["workers"].values())


def host_slots(host: str, workers: Iterable[Mapping[str, Any]]) -> int:
    """Task slots (worker threads) on `host`: the trials it may run at once."""
    return sum(info.get("nthreads", 1) for info in workers if info.get("host") == host)


def auto_threads(cores: int, slots: int) -> int:
    """A host's cores shared evenly among its task slots, at least 1 each."""
    return max(1, cores // max(1, slots))


def available_cores(cgroup_root: Path = CGROUP_ROOT, cgroup: str | None = None) -> int:
    """Cores this process may use: its CPU affinity, capped by the cgroup CPU quota (rounded
    up), at least 1. `os.cpu_count()` sees the node: a 4-CPU pod on a 64-core node would
    oversubscribe 16-fold. `cgroup`: this process's cgroup v2 path (default: /proc/self/cgroup)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    quota = cgroup_cpu_quota(cgroup_root, own_cgroup() if cgroup is None else cgroup)
    if quota is not None:
        cores = min(cores, math.ceil(quota))
    return max(1, cores)


def cgroup_cpu_quota(root: Path, cgroup: str = "/") -> float | None:
    """CPUs the cgroup quota allows (quota / period), or None if unlimited or not found.

    cgroup v2: `cpu.max` ("quota period" or "max period") of the process's cgroup and its
    ancestors (the tightest counts); cgroup v1: `cpu.cfs_quota_us` (-1: none) / `cpu.cfs_period_us`.
    """
    limits = []
    folder = root / cgroup.strip("/")
    for level in [folder, *folder.parents]:
        quota, _, period = (_read(level / "cpu.max") or "").partition(" ")
        limits.append(_limit(quota, period))
        if level == root:
            break
    for controller in ("cpu", "cpu,cpuacct", "cpuacct,cpu"):
        limits.append(_limit(_read(root / controller / "cpu.cfs_quota_us"), _read(root / controller / "cpu.cfs_period_us")))
    limits = [limit for limit in limits if limit is not None]
    return min(limits) if limits else None


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _limit(quota: str | None, period: str | None) -> float | None:
    """quota / period in CPUs; None for "max", -1, a missing file or junk (no limit known)."""
    try:
        ratio = int(quota) / int(period)  # type: ignore[arg-type]
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return ratio if ratio > 0 else None


def own_cgroup() -> str:
    """This process's cgroup v2 path ("0::/path" in /proc/self/cgroup), "/" if unknown."""
    for line in (_read(Path("/proc/self/cgroup")) or "").splitlines():
        if line.startswith("0::"):
            return line[3:] or "/"
    return "/"


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
) -> dict[str, Any]:
    """Train `configs` as one population in `python -m sweeps.child`; relay its events and
    the stops of members (indices into `configs`) that `stopped_members` names; enforce the
    time limit. `env`: names of more worker variables the child gets (`resources.env`).

    Returns {"status": "ok" | "failed", "results" (one per config, None when failed), "reason",
    "returncode", "startup_seconds", "wall_seconds"}; never raises for a trainer failure.
    Whether a member diverged or stopped early is in its result (see `member_failure`). The
    reason never holds the worker's secret-looking values (it goes to tables and reports).
    """
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "sweeps.child"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(threads, gpu_ids or [], env),
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
        reason = f"{error['kind']}: {error['message']}"
    elif outcome["results"] is None:
        reason = exit_reason(proc.returncode, tail)
    else:
        return {**outcome, "status": "ok"}
    return {**outcome, "status": "failed", "reason": scrub_secrets(reason, env_secrets(os.environ))}


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
