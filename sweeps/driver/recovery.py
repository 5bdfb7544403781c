"""What outlives a driver session, and what the next one recovers: re-queued trials.

A trial that ends without its own fault (the driver was interrupted or died) is told FAIL with
the reason and its params are enqueued again, so the budget loses nothing. The copy carries
`requeued_from`: the trial whose checkpoint folder it resumes (the first of the chain, since
every copy keeps using that folder) and `requeue_reason`. Interrupted trials are re-queued every
time; a trial lost with a dead driver only once (it may be what killed the driver).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial, TrialState

from sweeps.driver.tally import Tally
from sweeps.store.checkpoints import checkpoint_key, remove_orphaned_folders
from sweeps.store.optuna_private import fixed_params, tell, trial_id

INTERRUPTED, DRIVER_LOST = "interrupted", "driver lost"
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def requeue(study: optuna.Study, trial: FrozenTrial, reason: str) -> bool:
    """Tell `trial` FAIL with `reason` and enqueue its params again (unless it never had any,
    or it was lost with a driver before: lost trials are re-queued once). True when re-queued."""
    optuna.Trial(study, trial_id(trial)).set_user_attr("fail_reason", reason)
    tell(study, trial.number, state=TrialState.FAIL)
    # Interrupted right after `ask`, a popped queued trial has its params only as fixed ones.
    params = trial.params or fixed_params(trial)
    lost_twice = reason == DRIVER_LOST and "requeued_from" in trial.user_attrs and \
        trial.user_attrs.get("requeue_reason", DRIVER_LOST) == DRIVER_LOST
    if not params or lost_twice:
        return False
    study.enqueue_trial(params, user_attrs={"requeued_from": checkpoint_key(trial), "requeue_reason": reason})
    return True


def recover(study: optuna.Study, run_dir: Path, say: Callable[[str], None]) -> None:
    """Re-queue what a dead driver left RUNNING and remove checkpoint folders nothing can resume."""
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        again = requeue(study, trial, DRIVER_LOST)
        say(f"trial {trial.number} was left RUNNING by an earlier driver: FAIL (driver lost)"
            + (", re-queued" if again else ""))
    for folder in remove_orphaned_folders(run_dir, study):
        say(f"removed {folder.relative_to(run_dir)}: no trial left to resume it")


def count_earlier(study: optuna.Study, tally: Tally) -> None:
    """Earlier sessions' finished trials and best value, in `tally`."""
    earlier = study.get_trials(deepcopy=False, states=FINISHED)
    tally.finished_before = len(earlier)
    for trial in earlier:
        if trial.state == TrialState.COMPLETE:
            tally.offer_best(trial.value, trial.number)
