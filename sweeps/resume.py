"""What a sweep session does first on a study earlier sessions ran: recover what they left."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import optuna
from optuna.trial import TrialState

from sweeps import lifecycle
from sweeps.tally import Tally

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def recover(study: optuna.Study, run_dir: Path, say: Callable[[str], None]) -> None:
    """Re-queue what a dead driver left RUNNING and remove checkpoint folders nothing can resume."""
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        again = lifecycle.requeue(study, trial, lifecycle.DRIVER_LOST)
        say(f"trial {trial.number} was left RUNNING by an earlier driver: FAIL (driver lost)"
            + (", re-queued" if again else ""))
    for folder in lifecycle.remove_orphaned_folders(run_dir, study):
        say(f"removed {folder.relative_to(run_dir)}: no trial left to resume it")


def count_earlier(study: optuna.Study, tally: Tally) -> None:
    """Earlier sessions' finished trials and best value, in `tally`."""
    earlier = study.get_trials(deepcopy=False, states=FINISHED)
    tally.finished_before = len(earlier)
    complete = [t for t in earlier if t.state == TrialState.COMPLETE]
    if complete:
        best = max(complete, key=lambda t: t.value)
        tally.best_value, tally.best_trial = best.value, best.number
