"""A storage whose server may go away for a while (a PostgreSQL restart, a Redis failover, the
network to it dropping): every call that fails because the server cannot be reached is retried
with backoff until the outage has lasted `storage.outage` seconds, then `StorageUnreachable`
says so, naming the storage (password masked) and the setting.

A call whose connection broke after the server applied it is applied twice: harmless for the
writes a driver repeats (attributes, reports, heartbeats are set, not added); a retried ask can
leave an extra RUNNING trial without params, which its lease failing ends (`sweeps.store.leases`);
a retried tell finds the trial finished, which the driver reads back (`sweeps.driver.loop`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import sqlalchemy.exc
from optuna.storages import BaseStorage
from optuna.storages._heartbeat import BaseHeartbeat, is_heartbeat_enabled

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


def outage_of(error: BaseException | None) -> BaseException | None:
    """The outage error `error` is or was caused by (Optuna wraps SQLAlchemy's), else None."""
    kinds, seen = outage_errors(), set()
    while error is not None and id(error) not in seen:
        if isinstance(error, kinds):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


class _Patient(BaseStorage, BaseHeartbeat):
    """`inner`, with its calls retried through outages of its server (see the module). Its
    storage methods are made below (`PatientStorage`)."""

    def __init__(self, inner: BaseStorage, shown: str, patience: float):
        self.inner, self.shown, self.patience = inner, shown, patience
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
                cause = outage_of(error)
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

    # -- heartbeats (Optuna's, where the inner storage has them: an RDB opened with leases) ---
    def get_heartbeat_interval(self) -> int | None:
        return self.inner.get_heartbeat_interval() if is_heartbeat_enabled(self.inner) else None

    def get_heartbeat_stale_trial_callback(self) -> None:
        return None

    def record_heartbeat(self, trial_id: int) -> None:
        self.call(self.inner.record_heartbeat, trial_id)

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        from sweeps.store.optuna_private import stale_trial_ids

        return self.call(stale_trial_ids, self.inner, study_id)


def _patient(name: str) -> Callable[..., Any]:
    def method(self: _Patient, *args: Any, **kwargs: Any) -> Any:
        return self.call(getattr(self.inner, name), *args, **kwargs)

    method.__name__ = name
    return method


# Every public method of a storage goes through `call`: the abstract ones and those a storage may
# implement faster than BaseStorage does (Optuna's cache of RDB trials does).
PatientStorage = type("PatientStorage", (_Patient,), {
    name: _patient(name) for name in dir(BaseStorage) if not name.startswith("_") and callable(getattr(BaseStorage, name))
})


def first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"
