"""The next task to submit: a lost task to rerun as it was, else an asked trial's part (all its
seeds, or one seed with `population: false`) with up to `pack - 1` mates asked to fit it
(`sweeps.driver.packing`). A free slot asks only what it starts now, so no trial waits RUNNING while a
model-based sampler asks on without its result; a sampler that draws blind may have the next
trial asked ahead (`ask_next`, see `sweeps.driver.loop`).
"""

from __future__ import annotations

from collections import deque
from pathlib import Path

import optuna

from sweeps.driver.asking import Asker
from sweeps.driver.packing import Mates, shape
from sweeps.driver.trial import LiveTrial, Part, Seeds, Task
from sweeps.study.spec import StudySpec


class TaskForming:
    """Asks the trials of the tasks to submit and groups their seeds; every trial it asks goes
    into `trials` (trial number -> LiveTrial, the driver's)."""

    def __init__(self, spec: StudySpec, study: optuna.Study, run_dir: Path, asker: Asker,
                 trials: dict[int, LiveTrial]):
        self.spec, self.asker, self.trials = spec, asker, trials
        self.mates = Mates(study, spec, run_dir)
        self.pending: deque[Part] = deque()  # asked, not yet in a task (a trial's other seeds)
        self.retrying: deque[Task] = deque()  # lost on a dead worker, to submit again as they were

    def next_task(self) -> Task | None:
        """A lost task to rerun, else an asked part (or a newly asked trial) with up to
        `pack - 1` mates asked to fit it; None when the budget allows no more."""
        if self.retrying:
            return self.retrying.popleft()
        self.ask_next()
        if not self.pending:
            return None
        task = [self.pending.popleft()]
        lead = self.trials[task[0][0]]
        if self.spec.pack == 1 or not self.mates.wanted(lead.optuna_trial):
            return tuple(task)
        while len(task) < self.spec.pack and self.asker.can_ask(self.active()) and self.mates.prepare(lead.optuna_trial):
            mate = self.ask()
            if mate is None:
                break
            part = (mate.number, mate.units[0])
            if shape(mate.configs[mate.seeds[0]]) != shape(lead.configs[lead.seeds[0]]):
                self.pending.append(part)  # another driver took the queued mate: this one leads the next task
                break
            task.append(part)
        return tuple(task)

    def ask_next(self) -> None:
        """Ask the trial that leads the next task, unless one is already waiting."""
        if not self.pending and not self.retrying and (first := self.ask(first=True)) is not None:
            self.pending.extend((first.number, unit) for unit in first.units)

    def rerun(self, task: Task) -> None:
        """Submit `task` again, as it was, before anything new (its worker died)."""
        self.retrying.append(task)

    def ask(self, first: bool = False) -> LiveTrial | None:
        """A new trial (the first of a task asks again past trials whose params fail)."""
        trial = self.asker.first(self.active) if first else self.asker.ask()
        if trial is not None:
            self.trials[trial.number] = trial
        return trial

    def active(self) -> int:
        """Trials of this session that will count as finished (failed ones do not)."""
        return sum(trial.fail_reason is None for trial in self.trials.values())

    def drop(self, number: int) -> list[Seeds]:
        """Take trial `number`'s parts not yet in a task out of the queue (it was pruned or
        failed); returns their seeds."""
        dropped = [unit for n, unit in self.pending if n == number]
        self.pending = deque(part for part in self.pending if part[0] != number)
        return dropped
