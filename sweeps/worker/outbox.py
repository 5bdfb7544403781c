"""A task's events on their way to the driver, sent in batches.

Each message through Dask costs the scheduler and the driver's client (its IO loop reads,
decodes and hands on every one): at a few messages per task-second, a hundred tasks in flight
keep the driver's client busy. Events come in bursts (a population's members evaluate at the
same boundary, a short trial every fraction of a second), so an `Outbox` sends an event that
comes after a quiet spell GATHER_S later, with the rest of its burst, and the events that follow
within SEND_EVERY_S of a send together at that interval's end. The driver hears from a task at
most once a second; a real trial's evaluations, seconds or minutes apart, reach it at once, and
pruning acts on them at most SEND_EVERY_S later. A lazy event (a task's start) does not make a
batch go: it waits up to SEND_EVERY_S for another to carry it. The events still queued when the
task returned need not go when its outcome carries them (`close(carried=...)`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Container
from typing import Any

SEND_EVERY_S = 1.0
GATHER_S = 0.05


class Outbox:
    """Batches of events handed to `send` from a thread of its own; `close` sends what is left
    and raises what stopped `send`, if anything did."""

    def __init__(self, send: Callable[[list[dict[str, Any]]], None], every: float = SEND_EVERY_S,
                 gather: float = GATHER_S):
        self.send, self.every, self.gather = send, every, gather
        self.pending: list[dict[str, Any]] = []
        self.due = 0.0  # when the pending events may go (later than now while all are lazy)
        self.closed = False
        self.error: BaseException | None = None
        self.changed = threading.Condition()
        self.thread = threading.Thread(target=self.run, name="outbox", daemon=True)
        self.thread.start()

    def add(self, event: dict[str, Any], lazy: bool = False) -> None:
        """Queue `event` (`lazy`: it waits up to `every` for another); raises what stopped
        sending, so that a task whose events cannot reach the driver (no reports, no pruning)
        fails now rather than after training to the end."""
        if self.error is not None:
            raise self.error
        with self.changed:
            due = time.monotonic() + (self.every if lazy else 0.0)
            self.due = min(self.due, due) if self.pending else due
            self.pending.append(event)
            self.changed.notify()

    def close(self, carried: Container[str] = ()) -> None:
        """Send what is queued at once, but for the kinds of event the outcome `carried`, and stop."""
        with self.changed:
            self.closed = True
            self.pending = [event for event in self.pending if event.get("event") not in carried]
            self.changed.notify()
        self.thread.join()
        if self.error is not None:
            raise self.error

    def run(self) -> None:
        sent = -float("inf")
        try:
            while True:
                with self.changed:
                    while not self.closed and not (self.pending and time.monotonic() >= self.due):
                        self.changed.wait(self.due - time.monotonic() if self.pending else None)
                    send_at = max(time.monotonic() + self.gather, sent + self.every)
                    self.changed.wait_for(lambda: self.closed, timeout=send_at - time.monotonic())
                    batch, self.pending, closed = self.pending, [], self.closed
                if batch:
                    self.send(batch)
                    sent = time.monotonic()
                if closed:
                    return
        except BaseException as error:  # noqa: BLE001 - raised again in the task's thread by `close`
            self.error = error
