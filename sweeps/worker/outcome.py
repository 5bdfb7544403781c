"""How a task ended, as the worker hands it back to the driver (plain data through Dask)."""

from __future__ import annotations

from typing import Any, Literal, NotRequired, TypedDict


class Outcome(TypedDict):
    """A task's outcome. "ok": `results` holds one TrainResult dict per member, in the order of
    the task's configs; "failed": `reason` says why (the trial process ended without results, a
    time limit, a trainer error); "lost" (made by the driver): the task's worker died.

    The process figures say how the trial process served the task: seconds until it was ready
    (`startup_seconds`), whether it had served tasks before (`process_reused`), how many it has
    served with this one (`process_tasks`), its memory after the task (`process_rss_mb`). The
    worker adds which trials' seeds the task trained (`parts`) and its own address (`worker`)."""

    status: Literal["ok", "failed", "lost"]
    results: list[dict[str, Any]] | None
    reason: str | None
    startup_seconds: NotRequired[float | None]
    wall_seconds: NotRequired[float]
    process_pid: NotRequired[int]
    process_reused: NotRequired[bool]
    process_tasks: NotRequired[int]
    process_rss_mb: NotRequired[float | None]
    parts: NotRequired[list[list[Any]]]
    worker: NotRequired[str]


def failed(reason: str, status: Literal["failed", "lost"] = "failed") -> Outcome:
    """An outcome without results."""
    return {"status": status, "reason": reason, "results": None}
