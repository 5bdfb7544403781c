"""A task's events on their way to the driver, sent in batches.

Each message through Dask costs the scheduler and the driver's client (its IO loop reads,
decodes and hands on every one), and a driver at 16 tasks in flight hears from its workers
hundreds of times a second. Events come in bursts (a population's members evaluate at the same
boundary; a short trial evaluates every fraction of a second), so an `Outbox` sends the first
event after a quiet spell at once and the ones that follow within SEND_EVERY_S together at its
end (a task's first events wait for what follows them within SEND_EVERY_S of its start): the
driver hears from a task at most 1 / SEND_EVERY_S times a second, and an event is sent at most
SEND_EVERY_S after it came (a stop already takes up to `sweeps.tasks.STOP_POLL_S` to reach
the child).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

SEND_EVERY_S = 0.25


class Outbox:
    """Batches of events handed to `send` from a thread of its own; `close` sends what is left
    and raises what stopped `send`, if anything did."""

    def __init__(self, send: Callable[[list[dict[str, Any]]], None], every: float = SEND_EVERY_S):
        self.send, self.every = send, every
        self.pending: list[dict[str, Any]] = []
        self.closed = False
        self.error: BaseException | None = None
        self.changed = threading.Condition()
        self.thread = threading.Thread(target=self.run, name="outbox", daemon=True)
        self.thread.start()

    def add(self, event: dict[str, Any]) -> None:
        """Queue `event`; raises what stopped sending, so that a task whose events cannot reach
        the driver (no reports, no pruning) fails now rather than after training to the end."""
        if self.error is not None:
            raise self.error
        with self.changed:
            self.pending.append(event)
            self.changed.notify()

    def close(self) -> None:
        with self.changed:
            self.closed = True
            self.changed.notify()
        self.thread.join()
        if self.error is not None:
            raise self.error

    def run(self) -> None:
        try:
            while True:
                with self.changed:  # a batch waits out the interval since the last (or the start)
                    self.changed.wait_for(lambda: self.closed, timeout=self.every)
                    self.changed.wait_for(lambda: self.pending or self.closed)
                    batch, self.pending, closed = self.pending, [], self.closed
                if batch:
                    self.send(batch)
                if closed:
                    return
        except BaseException as error:  # noqa: BLE001 - raised again in the task's thread by `close`
            self.error = error
