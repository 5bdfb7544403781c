"""Leases on RUNNING trials, kept in the study's storage: which driver session runs a trial
(`DRIVER`, a system attribute) and when it last said it still does (its heartbeat).

On an RDB storage opened with leases the heartbeat is Optuna's own, per trial (`RDBStorage`'s
`heartbeat_interval`/`grace_period`: a `trial_heartbeats` row updated in place, stamped with the
database's clock, so drivers' clocks need not agree). On the journal storages (file and Redis),
where every write is a line kept forever, it is one per session: the study system attribute
`HEARTBEAT + session` (the driver's Unix time; drivers' clocks must agree to well within the
grace period, as NTP keeps them), one write per round whatever the trials in flight. A lease has
expired when its heartbeat is older than the grace period, or at once when its session is known
dead (`dead`: its run-folder lock is free, `sweeps.store.writer`). A RUNNING trial without a
heartbeat (asked by something else, or by a driver killed right after asking) expires `grace`
seconds after it started.

Whoever takes an expired trial over fails it first (`claim`): a storage applies one FAIL to a
trial and refuses every later one (an RDB locks the trial's row; a journal replays the first
FAIL and raises `UpdateFinishedTrialError` to the writer of any later one), so exactly one
driver re-queues it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import BaseStorage
from optuna.storages._heartbeat import is_heartbeat_enabled
from optuna.trial import FrozenTrial, TrialState

from sweeps.store.optuna_private import stale_trial_ids, storage_of, study_id, trial_id

DRIVER = "dqn_sweep:driver"
HEARTBEAT = "dqn_sweep:heartbeat:"


def renew(storage: BaseStorage, study: int, session: str, trials: Iterable[int]) -> None:
    """Renew the leases of driver `session` on trial ids `trials` of study id `study`, now."""
    if is_heartbeat_enabled(storage):
        for trial in trials:
            storage.record_heartbeat(trial)
    else:
        storage.set_study_system_attr(study, HEARTBEAT + session, time.time())


def take(storage: BaseStorage, trial: int, session: str) -> None:
    """Lease a trial just asked to driver `session` (whose heartbeat on a journal is already
    running): on an RDB its first heartbeat, then its owner (a kill between the two leaves a
    heartbeat, which expires)."""
    if is_heartbeat_enabled(storage):
        storage.record_heartbeat(trial)
    storage.set_trial_system_attr(trial, DRIVER, session)


def expired(study: optuna.Study, grace: float, dead: Callable[[str], bool],
            mine: Callable[[int], bool]) -> list[FrozenTrial]:
    """The study's RUNNING trials whose lease has expired (see the module), except this
    driver's own (`mine`: by trial id)."""
    storage = storage_of(study)
    running = [t for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)) if not mine(trial_id(t))]
    if not running:
        return []
    rdb = is_heartbeat_enabled(storage)
    stale = set(stale_trial_ids(storage, study_id(study))) if rdb else set()
    beats = {} if rdb else storage.get_study_system_attrs(study_id(study))
    now = time.time()

    def lapsed(trial: FrozenTrial) -> bool:
        owner = trial.system_attrs.get(DRIVER)
        if owner is not None and dead(owner):
            return True
        if rdb and (owner is not None or trial_id(trial) in stale):
            return trial_id(trial) in stale
        last = beats.get(HEARTBEAT + owner) if owner is not None else None
        if last is None:
            last = trial.datetime_start.timestamp() if trial.datetime_start else now
        return now - float(last) > grace

    return [trial for trial in running if lapsed(trial)]


def claim(storage: BaseStorage, trial: int, reason: str) -> bool:
    """Fail trial id `trial` with `reason` (its `fail_reason`) unless another driver did first;
    True when this call's FAIL is the one the storage applied."""
    with contextlib.suppress(UpdateFinishedTrialError):  # another driver was first
        storage.set_trial_user_attr(trial, "fail_reason", reason)
    try:
        storage.set_trial_state_values(trial, TrialState.FAIL)
    except UpdateFinishedTrialError:
        return False
    return True
