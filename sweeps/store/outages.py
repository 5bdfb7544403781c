"""A storage whose server may go away for a while (a PostgreSQL restart, a Redis restart or
failover, the network to it dropping): every call that fails because the server cannot be
reached is retried with backoff until the outage has lasted `storage.outage` seconds, then
`StorageUnreachable` says so, naming the storage (password masked) and the setting.

An RDB storage is retried call by call (`PatientStorage`: a failed transaction left nothing
behind). A Redis journal is retried read by read and append by append (`PatientJournal`), below
Optuna's journal storage, so that an append whose read-back failed is not appended twice. What
the server applied before the connection broke is applied twice when retried: harmless for
what a driver writes again (attributes, reports, heartbeats are set, not added); a retried ask
can leave an extra RUNNING trial without params, which its lease expiring ends
(`sweeps.store.leases`); a retried tell finds the trial finished, which the driver reads back
(`sweeps.driver.loop`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import sqlalchemy.exc
from optuna.storages import BaseStorage, JournalStorage
from optuna.storages._heartbeat import BaseHeartbeat, is_heartbeat_enabled
from optuna.storages.journal import BaseJournalBackend
from optuna.storages.journal._base import BaseJournalSnapshot

log = logging.getLogger(__name__)
FIRST_RETRY_S, MAX_RETRY_S = 0.1, 2.0


class StorageUnreachable(RuntimeError):
    """The storage server could not be reached for longer than `storage.outage`."""


def outage_errors() -> tuple[type[BaseException], ...]:
    """What a storage raises when its server cannot be reached (SQLAlchemy's operational and
    interface errors: refused, cut or locked connections; redis-py's connection errors and
    timeouts, which include a server still loading its data)."""
    errors: tuple[type[BaseException], ...] = (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError)
    try:
        import redis.exceptions
    except ImportError:
        return errors
    return (*errors, redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)


def outage_cause(error: BaseException | None) -> BaseException | None:
    """The outage error `error` is or was caused by (Optuna wraps SQLAlchemy's), else None."""
    kinds, seen = outage_errors(), set()
    while error is not None and id(error) not in seen:
        if isinstance(error, kinds):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


class Outage:
    """One storage server's outages: calls retried through them (`call`), and how long it has
    been reachable since the last one (`steady_for`), shared by every thread of the driver."""

    def __init__(self, shown: str, patience: float):
        self.shown, self.patience = shown, patience
        self.lock = threading.Lock()
        self.down_since: float | None = None  # monotonic time the outage began
        self.recovered_at = float("-inf")  # monotonic time the last outage ended

    def steady_for(self) -> float:
        """Seconds since the server last came back (infinite when it never went away)."""
        return time.monotonic() - self.recovered_at

    def call(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        delay = FIRST_RETRY_S
        while True:
            try:
                result = method(*args, **kwargs)
            except Exception as error:
                cause = outage_cause(error)
                if cause is None:
                    raise
                delay = self.wait_out(cause, delay)
                continue
            if self.down_since is not None:
                self.back()
            return result

    def wait_out(self, error: BaseException, delay: float) -> float:
        """Sleep before the next try (raise when the outage has lasted too long); the next delay."""
        now = time.monotonic()
        with self.lock:
            if self.down_since is None:
                self.down_since = now
                log.warning("storage %s unreachable (%s); retrying for up to %g s (storage.outage)",
                            self.shown, first_line(error), self.patience)
            down_for = now - self.down_since
        if down_for >= self.patience:
            raise StorageUnreachable(
                f"storage {self.shown}: unreachable for {down_for:.0f} s, longer than storage.outage = "
                f"{self.patience:g} s ({first_line(error)})") from error
        time.sleep(min(delay, self.patience - down_for))
        return min(2 * delay, MAX_RETRY_S)

    def back(self) -> None:
        with self.lock:
            if self.down_since is not None:
                log.warning("storage %s reachable again after %.1f s", self.shown, time.monotonic() - self.down_since)
                self.down_since, self.recovered_at = None, time.monotonic()


def steady_for(storage: BaseStorage) -> float:
    """Seconds the storage's server has been reachable since its last outage (infinite for a
    storage without a server, or one that never went away)."""
    outage = getattr(storage, "outage", None)
    return outage.steady_for() if isinstance(outage, Outage) else float("inf")


class _Patient(BaseStorage, BaseHeartbeat):
    """An RDB storage `inner` (behind Optuna's cache), its calls retried through `outage`; its
    storage methods are made below (`PatientStorage`)."""

    def __init__(self, inner: BaseStorage, outage: Outage):
        self.inner, self.outage = inner, outage

    # -- Optuna's heartbeats (the inner RDB storage's, when opened with leases) ---------------
    def get_heartbeat_interval(self) -> int | None:
        return self.inner.get_heartbeat_interval() if is_heartbeat_enabled(self.inner) else None

    def get_heartbeat_stale_trial_callback(self) -> None:
        return None

    def record_heartbeat(self, trial_id: int) -> None:
        self.outage.call(self.inner.record_heartbeat, trial_id)

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        from sweeps.store.optuna_private import stale_trial_ids

        return self.outage.call(stale_trial_ids, self.inner, study_id)


def _patient(name: str) -> Callable[..., Any]:
    def method(self: _Patient, *args: Any, **kwargs: Any) -> Any:
        return self.outage.call(getattr(self.inner, name), *args, **kwargs)

    method.__name__ = name
    return method


# Every public method of a storage goes through `Outage.call`: the abstract ones and those a
# storage may implement faster than BaseStorage does (Optuna's cache of RDB trials does).
PatientStorage = type("PatientStorage", (_Patient,), {
    name: _patient(name) for name in dir(BaseStorage) if not name.startswith("_") and callable(getattr(BaseStorage, name))
})


class PatientJournal(BaseJournalBackend, BaseJournalSnapshot):
    """A journal backend on a server (Redis), its reads and appends retried through `outage`.
    A read is taken whole before Optuna replays it (a read cut halfway is read again from its
    start, never replayed twice)."""

    def __init__(self, backend: BaseJournalBackend, outage: Outage):
        self.backend, self.outage = backend, outage

    def read_logs(self, log_number_from: int) -> Iterable[dict[str, Any]]:
        return self.outage.call(lambda: list(self.backend.read_logs(log_number_from)))

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        self.outage.call(self.backend.append_logs, logs)

    def save_snapshot(self, snapshot: bytes) -> None:
        if isinstance(self.backend, BaseJournalSnapshot):
            self.outage.call(self.backend.save_snapshot, snapshot)

    def load_snapshot(self) -> bytes | None:
        return self.outage.call(self.backend.load_snapshot) if isinstance(self.backend, BaseJournalSnapshot) else None


class PatientJournalStorage(JournalStorage):
    """Optuna's journal storage on a `PatientJournal` (its `outage` at hand, `steady_for`)."""

    def __init__(self, backend: BaseJournalBackend, outage: Outage):
        super().__init__(PatientJournal(backend, outage))
        self.outage = outage


def first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"
