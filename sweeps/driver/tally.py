"""What a sweep session counts, and what it tells a progress display (`sweeps.display`)."""

from __future__ import annotations

import dataclasses
import time
from typing import Protocol

from optuna.trial import TrialState

from sweeps.study.ranking import is_better


class Monitor(Protocol):
    """What the driver tells a progress display."""

    def update(self, tally: Tally) -> None: ...

    def log(self, line: str) -> None: ...


@dataclasses.dataclass
class Tally:
    """Counts of this sweep, for the progress display and the final report. Constant size:
    a 10,000-trial session keeps sums, not lists."""

    n_trials: int | None
    timeout: float | None
    finished_before: int = 0
    completed: int = 0
    pruned: int = 0
    failed: int = 0
    running: int = 0
    best_value: float | None = None
    best_trial: int | None = None
    started: float = dataclasses.field(default_factory=time.monotonic)
    trials_timed: int = 0
    trial_seconds_total: float = 0.0

    @property
    def finished(self) -> int:
        return self.finished_before + self.completed + self.pruned

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    @property
    def mean_trial_seconds(self) -> float | None:
        return self.trial_seconds_total / self.trials_timed if self.trials_timed else None

    def count(self, state: TrialState, value: float | None, number: int, seconds: float) -> None:
        """One trial of this session ended in `state` after `seconds`."""
        if state == TrialState.FAIL:
            self.failed += 1
        elif state == TrialState.PRUNED:
            self.pruned += 1
        else:
            self.completed += 1
            self.offer_best(value, number)
        self.trials_timed += 1
        self.trial_seconds_total += seconds

    def offer_best(self, value: float, number: int) -> None:
        """Trial `number` finished COMPLETE with `value`: the best so far if it ranks above it."""
        if is_better(value, number, self.best_value, self.best_trial):
            self.best_value, self.best_trial = value, number

    def remaining_seconds(self, parallel: int) -> float | None:
        """Rough: mean trial time x trials left / trials in parallel (or the timeout left)."""
        estimates = []
        mean = self.mean_trial_seconds
        if self.n_trials is not None and mean is not None:
            left = max(0, self.n_trials - self.finished)
            estimates.append(mean * left / max(1, parallel))
        if self.timeout is not None:
            estimates.append(max(0.0, self.timeout - self.elapsed))
        return min(estimates) if estimates else None
