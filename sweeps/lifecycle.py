"""What outlives a driver session: re-queued trials and checkpoint folders.

A trial that ends without its own fault (the driver was interrupted or died) is told FAIL with
the reason and its params are enqueued again, so the budget loses nothing. The copy carries
`requeued_from`: the trial whose checkpoint folder it resumes (the first of the chain, since
every copy keeps using that folder) and `requeue_reason`. Interrupted trials are re-queued every
time; a trial lost with a dead driver only once (it may be what killed the driver).

Checkpoint folders (`run_dir/checkpoints/trial-A+trial-B/<seeds>`, see `checkpoint_path`) are
needed only while a trial can still resume from them: they go when their trials end, and at
start-up when no trial left to run refers to them.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterable
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial, TrialState

from sweeps import search

CHECKPOINTS = "checkpoints"
INTERRUPTED, DRIVER_LOST = "interrupted", "driver lost"
TO_RUN = (TrialState.WAITING, TrialState.RUNNING)
FOLDER = re.compile(r"trial-(\d+)")


def checkpoint_path(keys: list[int], seeds: tuple[int, ...]) -> str:
    """Where a task checkpoints, relative to the run folder (kept only while it can resume)."""
    trials = "+".join(f"trial-{key}" for key in keys)
    label = f"seed-{seeds[0]}" if len(seeds) == 1 else "seeds-" + "-".join(map(str, seeds))
    return f"{CHECKPOINTS}/{trials}/{label}"


def checkpoint_key(trial: FrozenTrial | optuna.Trial) -> int:
    """The trial whose checkpoint folder `trial` uses: its original when it was re-queued."""
    return int(trial.user_attrs.get("requeued_from", trial.number))


def requeue(study: optuna.Study, trial: FrozenTrial, reason: str) -> bool:
    """Tell `trial` FAIL with `reason` and enqueue its params again (unless it never had any,
    or it was lost with a driver before: lost trials are re-queued once). True when re-queued."""
    optuna.Trial(study, trial._trial_id).set_user_attr("fail_reason", reason)
    search.tell(study, trial.number, state=TrialState.FAIL)
    # Interrupted right after `ask`, a popped queued trial has its params only as fixed ones.
    params = trial.params or trial.system_attrs.get("fixed_params") or {}
    lost_twice = reason == DRIVER_LOST and "requeued_from" in trial.user_attrs and \
        trial.user_attrs.get("requeue_reason", DRIVER_LOST) == DRIVER_LOST
    if not params or lost_twice:
        return False
    study.enqueue_trial(params, user_attrs={"requeued_from": checkpoint_key(trial), "requeue_reason": reason})
    return True


def checkpoint_folders(run_dir: Path) -> dict[Path, set[int]]:
    """Each trial folder under `run_dir/checkpoints` and the trial keys its name holds."""
    root = Path(run_dir) / CHECKPOINTS
    if not root.is_dir():
        return {}
    return {path: {int(key) for key in FOLDER.findall(path.name)} for path in root.iterdir() if path.is_dir()}


def remove_folders_of(run_dir: Path, keys: Iterable[int]) -> None:
    """Remove the checkpoint folders of tasks that held any of `keys` (their trials ended)."""
    keys = set(keys)
    for path, held in checkpoint_folders(run_dir).items():
        if held & keys:
            shutil.rmtree(path, ignore_errors=True)


def remove_orphaned_folders(run_dir: Path, study: optuna.Study) -> list[Path]:
    """At start-up: remove folders no trial can resume any more (all their trials finished and
    no queued or running trial resumes them). Returns the removed folders."""
    folders = checkpoint_folders(run_dir)
    if not folders:
        return []
    needed = {checkpoint_key(t) for t in study.get_trials(deepcopy=False, states=TO_RUN)}
    orphans = [path for path, keys in folders.items() if not keys & needed]
    for path in orphans:
        shutil.rmtree(path, ignore_errors=True)
    return orphans
