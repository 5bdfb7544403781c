"""Which trials may share a task, and how to ask mates that fit without asking blind.

A task trains its trials as one population, so they must agree on every shape-changing trainer
field (`dqn_tf.config.POPULATION_SHARED_FIELDS`). Asking until a same-shaped trial turns up
leaves the misfits RUNNING in Optuna, waiting, while the sampler asks on without their results.
Instead a mate is asked with the first trial's shape-changing params fixed (`enqueue_trial` of
those params, then `ask`: the sampler draws only the rest), so it always fits and starts at once.

Trials already queued in the study (re-queued ones, or enqueued by hand) are popped first by
every `ask`: the next one joins when its fixed params give the same shape, else the task goes
with the mates it has and the queued trial leads the next task.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from dqn_tf.config import POPULATION_SHARED_FIELDS
from sweeps.store.checkpoints import CHECKPOINTS
from sweeps.store.optuna_private import fixed_params

if TYPE_CHECKING:
    from sweeps.study.spec import StudySpec


def shape(config: dict[str, Any]) -> tuple[str, ...]:
    """What trials must agree on to train in one population (see `check_population`)."""
    return tuple(repr(config.get(field)) for field in POPULATION_SHARED_FIELDS)


class Mates:
    """Prepares the study so that its next `ask` returns a trial that fits a task's first trial."""

    def __init__(self, study: optuna.Study, spec: StudySpec, run_dir: Path):
        self.study, self.run_dir = study, Path(run_dir)
        self.fixed = [key for key in spec.space if key.partition(".")[0] in POPULATION_SHARED_FIELDS]  # env_kwargs.*
        # The grid sampler cannot complete partly fixed params (it needs them all or none).
        self.can_fix = spec.sampler.name != "grid" or not self.fixed

    def wanted(self, first: optuna.Trial | FrozenTrial) -> bool:
        """Whether `first` shares a task: not a re-queued trial whose original left a checkpoint
        folder of its own (that checkpoint holds exactly its members, so it resumes alone)."""
        key = first.user_attrs.get("requeued_from")
        return key is None or not (self.run_dir / CHECKPOINTS / f"trial-{key}").is_dir()

    def prepare(self, first: optuna.Trial) -> bool:
        """Make the next `ask` a mate of `first`: a queued trial of its shape is next in line, or
        its shape-changing params are enqueued. False when the next ask would not fit."""
        wanted = {field: first.params[field] for field in self.fixed if field in first.params}
        waiting = self.study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
        if waiting:
            if not self.wanted(waiting[0]):
                return False  # it resumes alone: as a mate it would start over in a new folder
            queued = fixed_params(waiting[0])
            return all(field in queued and queued[field] == value for field, value in wanted.items())
        if not self.can_fix:
            return False
        if wanted:
            self.study.enqueue_trial(wanted, user_attrs={"mate_of": first.number})
        return True
