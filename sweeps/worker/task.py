"""The Dask task: one population trained in a trial process on a worker, made of one or more
trials' seeds (all seeds of a trial, one seed, or several same-shaped trials packed together).

`train_task` takes and returns plain data and never submits work. Events go back to the driver
through the worker's structured-event channel (`Worker.log_event`, read by
`Client.subscribe_topic`), in batches (`sweeps.worker.outbox`): each message is a list of
events. A stop request comes in per trial through a named `distributed.Event` and stops only
that trial's members. A task nobody waits for any more (its driver died or cancelled it: the
scheduler released it) stops all its members and keeps its checkpoint, for the driver that takes
its trials over (`sweeps.driver.recovery`). The trial process itself is `sweeps.worker.supervise`'s, usable without
Dask; its environment is an allowlist (`sweeps.worker.environment`) with TensorFlow thread pools
sized to the cores this worker may use (CPU affinity and cgroup quota, shared among the task
slots of its host).
"""

from __future__ import annotations

import contextlib
import functools
import shutil
from pathlib import Path
from typing import Any

from sweeps.worker.cores import auto_threads, available_cores, host_slots, scheduler_records
from sweeps.worker.environment import uploaded_paths
from sweeps.worker.gpus import worker_pool
from sweeps.worker.outbox import Outbox
from sweeps.worker.outcome import Outcome
from sweeps.worker.processes import worker_processes
from sweeps.worker.supervise import ENTRY, Reuse, train_in_child


def train_task(payload: dict[str, Any]) -> Outcome:
    """Dask entry point. `payload`: configs (one per population member, in the order of
    `parts`: [[trial, [seeds]], ...]), topic, stop_events ({trial: event name}), gpus,
    cpu_threads ("auto" or int), time_limit, entry, run_dir, checkpoint (a path under run_dir),
    env (the study's `resources.env`: more of the worker's variables for the child),
    interrupt_event (set by a driver's Ctrl-C: the checkpoint stays for the re-queued trial),
    processes ({"max_tasks", "max_rss_mb"}: reuse warm processes within these limits; missing
    or None: a fresh process for this task only). Returns `train_in_child`'s outcome."""
    from distributed import Event, get_client, get_worker

    worker, client = get_worker(), get_client()
    records = scheduler_records(client)  # this worker's slots and resources, its host's slots
    mine = records.get(worker.address, {})
    members = [(trial, seed) for trial, seeds in payload["parts"] for seed in seeds]
    # Bind the worker's client here, in the task thread: the relay thread could not find it.
    stops = {int(trial): Event(name, client=client) for trial, name in payload["stop_events"].items()}
    key = worker.get_current_task()

    def abandoned() -> bool:
        """The scheduler released this task while it runs (Dask's "cancelled"): no driver wants it."""
        state = worker.state.tasks.get(key)
        return state is None or state.state == "cancelled"

    def stopped_members() -> list[int]:
        if abandoned():
            return list(range(len(members)))
        stopped = {trial for trial, event in stops.items() if event.is_set()}
        return [k for k, (trial, _) in enumerate(members) if trial in stopped]

    threads = payload.get("cpu_threads", "auto")
    if threads == "auto":
        threads = auto_threads(available_cores(), host_slots(worker.host, records.values()))
    pool = worker_pool(int((mine.get("resources") or {}).get("GPU", 0)))
    checkpoint_dir = shared_checkpoint_dir(payload.get("run_dir"), payload.get("checkpoint"))
    limits = payload.get("processes")
    reuse = Reuse(worker_processes(worker, mine.get("nthreads", 1)), limits["max_tasks"],
                  limits.get("max_rss_mb")) if limits else None

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
            outcome = train_in_child(
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
                python_path=uploaded_paths(worker.local_directory),
            )
    finally:  # every event goes before the outcome, unless the outcome carries them all
        outbox.close(carried=("eval",) if carries_evals(outcome, len(members)) else ())
    interrupted = abandoned() or (payload.get("interrupt_event")
                                  and Event(payload["interrupt_event"], client=client).is_set())
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
    to read and to log this way (`sweeps.store.writer` writes either form)."""
    keys = dict.fromkeys(key for row in rows for key in row)
    return {key: [row.get(key) for row in rows] for key in keys}


def carries_evals(outcome: Outcome | None, members: int) -> bool:
    """Whether `outcome` holds every member's evaluations (each member's result does): then the
    driver takes those still queued from it, and they need no message."""
    return outcome is not None and outcome["status"] == "ok" and len(outcome["results"] or ()) == members


def shared_checkpoint_dir(run_dir: str | None, checkpoint: str | None) -> str | None:
    """`run_dir/checkpoint` when this worker sees the driver's run folder (same machine or a
    shared filesystem), so that a rerun after a lost worker resumes; else None (no checkpoints)."""
    if not run_dir or not checkpoint or not Path(run_dir).is_dir():
        return None
    return str(Path(run_dir) / checkpoint)
