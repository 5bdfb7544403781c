"""Every use of Optuna's private API, in one place, each behind a function that fails with a
clear message when a new Optuna changes what it relies on (`tests/store/test_optuna_private.py`
exercises each one). Public API is used wherever Optuna has one; these are what it lacks:

- telling a trial without the deep copy `Study.tell` makes for its caller (`tell`);
- a study's storage and its id there, and a trial's storage id (`storage_of`, `study_id`, `trial_id`);
- the params `enqueue_trial` fixed for a trial still WAITING (`fixed_params`);
- the journal file backend's file, lock and read offsets, and the journal storage's replay
  (`sweeps.store.journal` appends groups of writes, reads them back in the writing thread and
  finds WAITING trials quickly);
- the cache Optuna puts in front of an RDB storage when given one (`cached_rdb`: our RDB storage
  sits inside another, `sweeps.store.outages`, which Optuna would not cache);
- the RDB's stale trials by Optuna's heartbeat rule (`stale_trial_ids`: the trials whose last
  heartbeat, by the database's clock, is older than the grace period; `sweeps.store.leases`).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import optuna
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial, TrialState

T = TypeVar("T")
SUPPORTED = "optuna 5.x (the project pins optuna<6)"


class OptunaInternalsChanged(RuntimeError):
    """A private part of Optuna that dqn-sweep relies on is not what it was."""


def _private(what: str, get: Callable[[], T]) -> T:
    try:
        return get()
    except (AttributeError, ImportError, KeyError, TypeError) as error:
        raise OptunaInternalsChanged(
            f"optuna {optuna.__version__}: {what} is not what dqn-sweep relies on ({type(error).__name__}: "
            f"{error}); dqn-sweep supports {SUPPORTED}"
        ) from None


# --- studies and trials -------------------------------------------------------------------
def tell(study: optuna.Study, trial: optuna.Trial | int, value: float | None = None,
         state: TrialState | None = None) -> None:
    """`study.tell`, tolerating the grid sampler's `study.stop()` outside `optimize`.

    The grid sampler stops a study when its grid is exhausted, which raises under ask/tell
    after the trial has been stored; our budget already caps trials at the grid size.
    `Study.tell` is Optuna's `_tell_with_warning` plus a deep copy of the told trial for its
    caller, which nobody here reads (a tenth of a millisecond or more per trial at 10,000).
    """
    try:
        tell_body(study, trial, value, state)
    except RuntimeError as error:
        if "Study.stop" not in str(error):
            raise


def _tell_with_warning() -> Callable[..., Any]:
    from optuna.study._tell import _tell_with_warning as function

    return function


tell_body = _private("optuna.study._tell._tell_with_warning", _tell_with_warning)  # Study.tell's body


def storage_of(study: optuna.Study) -> BaseStorage:
    """The storage a study reads and writes (Optuna keeps it private)."""
    return _private("Study._storage", lambda: study._storage)


def study_id(study: optuna.Study) -> int:
    """A study's id in its storage, which storage calls take."""
    return _private("Study._study_id", lambda: study._study_id)


def trial_id(trial: FrozenTrial | optuna.Trial) -> int:
    """A trial's id in its storage (not its number), which storage calls take."""
    return _private(f"{type(trial).__name__}._trial_id", lambda: trial._trial_id)


def fixed_params(trial: FrozenTrial) -> dict[str, Any]:
    """The params `enqueue_trial` fixed for a trial that has not drawn them yet ({} if none)."""
    return dict(trial.system_attrs.get("fixed_params") or {})


# --- the journal --------------------------------------------------------------------------
def journal_file(backend: JournalFileBackend) -> str:
    return _private("JournalFileBackend._file_path", lambda: backend._file_path)


@contextlib.contextmanager
def journal_file_lock(backend: JournalFileBackend) -> Iterator[None]:
    """The inter-process lock Optuna's journal file backend takes around each append."""
    lock = _private("JournalFileBackend._lock", lambda: backend._lock)
    lock.acquire()
    try:
        yield
    finally:
        lock.release()


def journal_offset(backend: JournalFileBackend, log_number: int) -> int | None:
    """Where log `log_number` starts in the file, when the backend has read that far."""
    offsets = _private("JournalFileBackend._log_number_offset", lambda: backend._log_number_offset)
    return offsets.get(log_number)


def cached_rdb(storage: RDBStorage) -> BaseStorage:
    """`storage` behind Optuna's cache of finished trials, as `optuna.create_study` would put it
    (`optuna.storages.get_storage`, "only for internal usage")."""
    from optuna.storages import get_storage

    cached = get_storage(storage)
    if _private("_CachedStorage._backend", lambda: cached._backend) is not storage:
        raise OptunaInternalsChanged(f"optuna {optuna.__version__}: get_storage(RDBStorage) no longer puts its "
                                     f"cache in front of it; dqn-sweep supports {SUPPORTED}")
    return cached


def stale_trial_ids(storage: BaseStorage, study: int) -> list[int]:
    """Ids of the RUNNING trials of study id `study` whose Optuna heartbeat is older than the
    storage's grace period (an RDB storage opened with `heartbeat_interval`; trials that never
    recorded one are not among them). `optuna.storages.fail_stale_trials` fails these trials
    itself; the driver fails and re-queues them its own way (`sweeps.driver.recovery`)."""
    return _private("BaseHeartbeat._get_stale_trial_ids", lambda: storage._get_stale_trial_ids)(study)


def sync_journal(storage: JournalStorage) -> None:
    """Replay what was appended to the journal since the storage last read it, in this thread
    (what the storage refuses of this thread's writes is raised here). Call with `storage_lock` held."""
    _private("JournalStorage._sync_with_backend", lambda: storage._sync_with_backend)()


def storage_lock(storage: JournalStorage) -> threading.Lock | threading.RLock:
    return _private("JournalStorage._thread_lock", lambda: storage._thread_lock)


def replayed_trials(storage: JournalStorage, study_id: int) -> tuple[list[int], dict[int, FrozenTrial]]:
    """(the study's trial ids in creation order, every trial by id) as the journal storage has
    replayed them, after reading what was appended since. Call with `storage_lock` held."""
    from optuna.storages.journal._storage import NOT_FOUND_MSG

    def read() -> tuple[list[int], dict[int, FrozenTrial]]:
        storage._sync_with_backend()
        replay = storage._replay_result
        if study_id not in replay._studies:
            raise LookupError(NOT_FOUND_MSG)
        return replay._study_id_to_trial_ids[study_id], replay._trials

    try:
        return _private("JournalStorage's replay (_sync_with_backend, _replay_result)", read)
    except LookupError as error:
        raise KeyError(str(error)) from None
