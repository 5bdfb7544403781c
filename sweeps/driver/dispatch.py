"""What the driver hands Dask and gets back: a task's payload and resources, the names of its
session's events, its inbox's messages, and a finished future read as an outcome (plain data;
no Optuna here)."""

from __future__ import annotations

import contextlib
import dataclasses
import queue
import time
from concurrent.futures import Executor
from pathlib import Path
from typing import Any

from distributed import Future, KilledWorker

from sweeps.driver.trial import LiveTrial, Seeds, Task, seeds_label
from sweeps.store.checkpoints import checkpoint_path
from sweeps.study.spec import StudySpec
from sweeps.worker.outcome import Outcome, failed

EVENTS_LINGER_S = 0.1


@dataclasses.dataclass(frozen=True)
class Events:
    """A batch of a task's events (`sweeps.worker.outbox`), as the driver's topic hands it over."""

    events: list[dict[str, Any]]


@dataclasses.dataclass(frozen=True)
class Freed:
    """A task returned: its slot is free, before its outcome is read from its worker."""

    future: Future


@dataclasses.dataclass(frozen=True)
class Done:
    """A task's outcome, read (a returned task's, or one whose worker died)."""

    future: Future
    outcome: Outcome


@dataclasses.dataclass(frozen=True)
class Tick:
    """The session's leases were renewed (`sweeps.driver.heartbeat`): time to look at the others'."""


@dataclasses.dataclass(frozen=True)
class Broken:
    """The heartbeat thread stopped on an error (the storage stayed unreachable): the driver raises it."""

    error: BaseException


Message = Events | Freed | Done | Tick | Broken


def payload(task: Task, trials: dict[int, LiveTrial], spec: StudySpec, *, topic: str, entry: str,
            run_dir: Path) -> dict[str, Any]:
    """The plain-data argument of `sweeps.worker.task.train_task` for one task."""
    keys = [trials[number].checkpoint_key for number, _ in task]
    configs = [trials[number].configs[seed] for number, unit in task for seed in unit]
    return task_payload(configs, task, spec, topic=topic, entry=entry, run_dir=run_dir,
                        checkpoint=checkpoint_path(keys, task[0][1]))


def task_payload(configs: list[dict[str, Any]], task: Task, spec: StudySpec, *, topic: str, entry: str,
                 run_dir: Path, checkpoint: str, time_limit: float | None = None) -> dict[str, Any]:
    """`train_task`'s argument: `configs` (one per member, in the order of the task's parts)
    trained as one population under the study's resources (`time_limit`: instead of theirs)."""
    resources = spec.resources
    return {
        "configs": configs,
        "parts": [[number, list(unit)] for number, unit in task],
        "topic": topic,
        "stop_events": {str(number): stop_event_name(topic, number) for number, _ in task},
        "interrupt_event": interrupt_event_name(topic),
        "gpus": resources.gpus,
        "cpu_threads": resources.cpu_threads,
        "time_limit": resources.time_limit if time_limit is None else time_limit,
        "env": list(resources.env),
        "processes": resources.process_limits(),
        "entry": entry,
        "run_dir": str(run_dir),
        "checkpoint": checkpoint,
    }


def interrupt_event_name(topic: str) -> str:
    return f"{topic}-interrupted"


def stop_event_name(topic: str, number: int) -> str:
    return f"{topic}-stop-{number}"


def task_resources(spec: StudySpec) -> dict[str, Any]:
    return {"resources": {"GPU": spec.resources.gpus}} if spec.resources.gpus else {}


def task_outcome(future: Future) -> Outcome:
    """A finished future as an outcome: a task error is a failure, a dead worker "lost"."""
    if future.status == "cancelled":
        return failed("cancelled")
    error = future.exception() if future.status == "error" else None
    if isinstance(error, KilledWorker):
        return failed(f"worker lost ({getattr(error.last_worker, 'address', 'unknown')})", "lost")
    if error is not None:
        return failed(f"{type(error).__name__}: {error}")
    return future.result()


def split_outcome(task: Task, outcome: Outcome) -> list[tuple[int, Seeds, Outcome]]:
    """Each trial's part of a task's outcome: (trial, seeds, the outcome with their results only)."""
    results, start, parts = outcome.get("results"), 0, []
    for number, unit in task:
        parts.append((number, unit, {**outcome, "results": results[start:start + len(unit)] if results else None}))
        start += len(unit)
    return parts


def result_evals(number: int, unit: Seeds, part: Outcome) -> list[dict[str, Any]]:
    """The evaluations in a part's results, as the events that would have brought them."""
    return [{**event, "event": "eval", "trial": number, "seed": seed}
            for seed, result in zip(unit, part["results"] or ()) for event in result.get("evals") or ()]


def take_messages(inbox: queue.Queue[Message], linger: float = EVENTS_LINGER_S) -> list[Message]:
    """Wait for a message in the driver's `inbox`, then take all that are in. Events linger up to
    `linger` seconds for more (their reports share one journal append; with a pruner nothing is
    shared and a stop should go at once: 0); a completion or a freed slot is taken at once."""
    messages = [inbox.get()]
    until = time.monotonic() + linger
    with contextlib.suppress(queue.Empty):
        while isinstance(messages[-1], Events) and (left := until - time.monotonic()) > 0:
            messages.append(inbox.get(timeout=left))
        while True:
            messages.append(inbox.get_nowait())
    return messages


def pass_outcome(inbox: queue.Queue[Message], readers: Executor, future: Future) -> None:
    """A done-callback (it runs in Dask's one callback thread): put `Freed` in the driver's
    `inbox` at once when the task returned, then `Done` with its outcome. Reading
    a returned task's outcome is a round trip to its worker, made in `readers` so that neither
    the driver's thread nor the next task's notice waits on it."""
    if future.status == "finished":
        inbox.put(Freed(future))
    try:
        readers.submit(put_outcome, inbox, future)
    except RuntimeError:  # the driver's session ended (its readers are shut down): read it here
        put_outcome(inbox, future)


def put_outcome(inbox: queue.Queue[Message], future: Future) -> None:
    try:
        outcome = task_outcome(future)
    except Exception as error:  # noqa: BLE001 - the driver must hear of every completion
        outcome = failed(f"result unreadable: {type(error).__name__}: {error}")
    inbox.put(Done(future, outcome))


def task_label(task: Task) -> str:
    return ", ".join(f"trial {number} {seeds_label(unit)}" for number, unit in task)


def first_line(text: str) -> str:
    """A reason's first line, for the one-line log (the trial keeps all of it)."""
    return text.splitlines()[0] if text else text
