"""What outlives a driver session, and what another recovers: re-queued trials.

A trial that ends without its own fault (its driver was interrupted or died) is FAIL with the
reason and its params are enqueued again, so the budget loses nothing. The copy carries
`requeued_from`: the trial whose checkpoint folder it resumes (the first of the chain, since
every copy keeps using that folder; a driver whose run folder is shared finds it) and
`requeue_reason`. Interrupted trials are re-queued every time; a trial lost with a dead driver
only once (it may be what killed the driver).

A driver knows another is dead when the lease on its trials has expired (`sweeps.store.leases`):
no heartbeat for `storage.grace` seconds, or at once when that driver shared this run folder and
its session lock is free. A live driver's trials are never taken. Each expired trial is taken
over by exactly one driver (`leases.claim`), at start-up and at every heartbeat after; right
after the storage came back from an outage, not before `storage.grace` more seconds (the other
drivers' heartbeats could not reach it either).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial, TrialState

from sweeps.driver.tally import Tally
from sweeps.driver.trial import LiveTrial
from sweeps.store import leases
from sweeps.store.checkpoints import checkpoint_key, remove_orphaned_folders
from sweeps.store.optuna_private import fixed_params, storage_of, tell, trial_id
from sweeps.store.outages import steady_for

INTERRUPTED, DRIVER_LOST = "interrupted", "driver lost"


def requeue(study: optuna.Study, trial: FrozenTrial, reason: str) -> bool:
    """Tell this session's `trial` FAIL with `reason` and enqueue its params again (see `again`)."""
    optuna.Trial(study, trial_id(trial)).set_user_attr("fail_reason", reason)
    tell(study, trial.number, state=TrialState.FAIL)
    return again(study, trial, reason)


def again(study: optuna.Study, trial: FrozenTrial, reason: str) -> bool:
    """Enqueue the params of `trial`, FAIL with `reason`, unless it never had any or it was lost
    with a driver before (lost trials are re-queued once). True when re-queued."""
    # Interrupted right after `ask`, a popped queued trial has its params only as fixed ones.
    params = trial.params or fixed_params(trial)
    lost_twice = reason == DRIVER_LOST and "requeued_from" in trial.user_attrs and \
        trial.user_attrs.get("requeue_reason", DRIVER_LOST) == DRIVER_LOST
    if not params or lost_twice:
        return False
    study.enqueue_trial(params, user_attrs={"requeued_from": checkpoint_key(trial), "requeue_reason": reason})
    return True


def take_over(study: optuna.Study, grace: float, dead: Callable[[str], bool], mine: Callable[[int], bool],
              say: Callable[[str], None]) -> int:
    """Fail and re-queue the trials whose lease expired (other drivers', never this one's:
    `mine`), each by one driver only; how many this one took."""
    storage = storage_of(study)
    if steady_for(storage) < grace:
        return 0  # just back from an outage: the others' heartbeats may not have reached it yet
    taken = 0
    for trial in leases.expired(study, grace, dead, mine):
        if not leases.claim(storage, trial_id(trial), DRIVER_LOST):
            continue  # another driver took it first
        taken += 1
        requeued = again(study, trial, DRIVER_LOST)
        say(f"trial {trial.number} was RUNNING without a live driver (its lease expired): FAIL (driver lost)"
            + (", re-queued" if requeued else ""))
    return taken


def taken_from(study: optuna.Study, trials: Iterable[LiveTrial]) -> list[LiveTrial]:
    """This session's `trials` that are not RUNNING in the storage any more: another driver took
    them over (this one stalled past `storage.grace`)."""
    running = {trial_id(t) for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
    return [t for t in trials if not t.taken_over and trial_id(t.optuna_trial) not in running]


def recover(study: optuna.Study, run_dir: Path, grace: float, dead: Callable[[str], bool],
            say: Callable[[str], None]) -> None:
    """At start-up: take over the trials of dead drivers (`take_over`) and remove checkpoint
    folders nothing can resume."""
    take_over(study, grace, dead, lambda _: False, say)
    for folder in remove_orphaned_folders(run_dir, study):
        say(f"removed {folder.relative_to(run_dir)}: no trial left to resume it")


def count_earlier(study: optuna.Study, tally: Tally) -> None:
    """Earlier sessions' best value, in `tally` (their finished trials count in the budget:
    `sweeps.driver.asking`)."""
    earlier = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    for trial in earlier:
        tally.offer_best(trial.value, trial.number)
