"""The run folder's checkpoint folders: `run_dir/checkpoints/trial-A+trial-B/<seeds>` (see
`checkpoint_path`), one per task, holding arrays and JSON only.

A folder is needed only while a trial can still resume from it: it goes when its trials end,
and at start-up when no trial left to run refers to it. A re-queued trial resumes the folder of
the trial it copies (`requeued_from`, `sweeps.driver.recovery`). The held-out phase keeps its
own under `checkpoints/heldout/` (`heldout_checkpoint_path`) and removes them itself.
"""

from __future__ import annotations

import contextlib
import re
import shutil
from collections.abc import Iterable
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial, TrialState

CHECKPOINTS = "checkpoints"
TO_RUN = (TrialState.WAITING, TrialState.RUNNING)
FOLDER = re.compile(r"trial-(\d+)")
HELDOUT = "heldout"


def seeds_folder(seeds: tuple[int, ...]) -> str:
    return f"seed-{seeds[0]}" if len(seeds) == 1 else "seeds-" + "-".join(map(str, seeds))


def checkpoint_path(keys: list[int], seeds: tuple[int, ...]) -> str:
    """Where a task checkpoints, relative to the run folder (kept only while it can resume)."""
    trials = "+".join(f"trial-{key}" for key in keys)
    return f"{CHECKPOINTS}/{trials}/{seeds_folder(seeds)}"


def heldout_checkpoint_path(config: str, seeds: tuple[int, ...]) -> str:
    """Where a held-out task of `config` ("trial 7", "baseline") checkpoints, relative to the run
    folder."""
    return f"{CHECKPOINTS}/{HELDOUT}/{config.replace(' ', '-')}/{seeds_folder(seeds)}"


def remove_heldout_folders(run_dir: Path, keep: Iterable[str] = ()) -> None:
    """Remove the held-out phase's checkpoint folders but those in `keep` (relative paths)."""
    root = Path(run_dir) / CHECKPOINTS / HELDOUT
    kept = {Path(run_dir) / path for path in keep}
    for folder in (root.glob("*/*") if root.is_dir() else ()):
        if folder not in kept:
            shutil.rmtree(folder, ignore_errors=True)
    for folder in sorted(root.glob("*"), reverse=True) + [root]:
        with contextlib.suppress(OSError):  # only empty ones go
            folder.rmdir()


def checkpoint_key(trial: FrozenTrial | optuna.Trial) -> int:
    """The trial whose checkpoint folder `trial` uses: its original when it was re-queued."""
    return int(trial.user_attrs.get("requeued_from", trial.number))


def checkpoint_folders(run_dir: Path) -> dict[Path, set[int]]:
    """Each trial folder under `run_dir/checkpoints` and the trial keys its name holds."""
    root = Path(run_dir) / CHECKPOINTS
    if not root.is_dir():
        return {}
    return {path: {int(key) for key in FOLDER.findall(path.name)} for path in root.iterdir()
            if path.is_dir() and path.name != HELDOUT}


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
