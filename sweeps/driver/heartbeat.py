"""The session's leases on its trials (`sweeps.store.leases`), renewed every `storage.heartbeat`
seconds by a thread of their own, so that a driver busy in a long step (a slow ask, a slow
storage call) still holds its trials. After each round it wakes the driver's loop (`Tick`),
which looks at the other drivers' leases; when the storage stays unreachable past
`storage.outage` (or anything else goes wrong), it hands the error to the loop (`Broken`) and
stops.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable

from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import BaseStorage

from sweeps.driver.dispatch import Broken, Message, Tick
from sweeps.store.leases import renew

JOIN_S = 5.0


class Heartbeat:
    """Renews driver `session`'s leases on the trial ids it holds (`hold`, `drop`) of study id
    `study`, from `start` (a first round at once) to `stop`."""

    def __init__(self, storage: BaseStorage, study: int, session: str, interval: float,
                 wake: Callable[[Message], None]):
        self.storage, self.study, self.session = storage, study, session
        self.interval, self.wake = interval, wake
        self.held: set[int] = set()
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.run, name="lease-heartbeat", daemon=True)

    def hold(self, trial_id: int) -> None:
        with self.lock:
            self.held.add(trial_id)

    def drop(self, trial_id: int) -> None:
        with self.lock:
            self.held.discard(trial_id)

    def start(self) -> None:
        self.beat()
        self.thread.start()

    def beat(self) -> None:
        with self.lock:
            held = list(self.held)
        with contextlib.suppress(UpdateFinishedTrialError):  # taken over: the loop finds out
            renew(self.storage, self.study, self.session, held)

    def stop(self) -> None:
        """Stop renewing (a round stuck on an unreachable storage is left to end on its own)."""
        self.stopping.set()
        if self.thread.is_alive():
            self.thread.join(timeout=JOIN_S)

    def run(self) -> None:
        try:
            while not self.stopping.wait(self.interval):
                self.beat()
                self.wake(Tick())
        except Exception as error:  # noqa: BLE001 - the loop raises it: leases must not lapse unseen
            self.wake(Broken(error))
