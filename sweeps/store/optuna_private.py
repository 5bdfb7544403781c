"""Every use of Optuna's private API, in one place, each behind a function that fails with a
clear message when a new Optuna changes what it relies on (`tests/store/test_optuna_private.py`
exercises each one). Public API is used wherever Optuna has one; these are what it lacks:

- telling a trial without the deep copy `Study.tell` makes for its caller (`tell`);
- a study's storage, and a trial's storage id (`storage_of`, `trial_id`);
- the params `enqueue_trial` fixed for a trial still WAITING (`fixed_params`);
- the journal file backend's file, lock and read offsets, and the journal storage's replayed
  trials (`sweeps.store.journal` appends groups of writes and finds WAITING trials quickly).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import optuna
from optuna.storages import BaseStorage, JournalStorage
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
