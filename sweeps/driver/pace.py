"""How long Optuna takes in a sweep session, and a warning when its asks slow the sweep.

The driver asks, tells and reports on one thread: while it waits for Optuna, no slot is
refilled. With `parallel` tasks of T seconds in flight, a trial finishes every T / parallel
seconds on average; once an ask takes a good share of that (SLOW_SHARE), workers start to
wait for the driver. Samplers differ: TPE's ask grows linearly with the finished trials, and the
cost is Python work per finished trial, not per candidate (`n_ei_candidates` hardly changes it,
`multivariate: true` makes it dearer); random and QMC asks stay flat (docs/performance.md).
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections import deque
from collections.abc import Iterator

# ask: with suggest (TPE samples there); tell: with the trial attrs (and, without a pruner, the last
# evaluations, which came with the results); report: the evaluations that came in together, stored
# and judged by the pruner
KINDS = ("ask", "tell", "report")
WINDOW = 100  # recent calls the median is taken over
SLOW_SHARE = 0.25
HINTS = {
    "tpe": "TPE's ask grows with the finished trials (n_ei_candidates hardly changes it); for a "
           "sweep this long use sampler random or qmc, or go on in a new study with the best params "
           "enqueued; keep multivariate off",
    "gp": "the GP sampler's ask grows faster than the finished trials; use tpe past a few hundred trials",
    "cmaes": "CMA-ES reads every finished trial on each ask; random or qmc asks stay flat",
}
OTHER_HINT = ("asks wait on the storage: a journal file on a slow or network disk, or a remote "
              "database; put the run folder on a local disk or use a closer database")


class Pace:
    """Wall seconds of this session's Optuna calls: recent ones for the warning, sums for the summary."""

    def __init__(self, sampler: str):
        self.sampler = sampler
        self.recent = {kind: deque(maxlen=WINDOW) for kind in KINDS}
        self.total = dict.fromkeys(KINDS, 0.0)
        self.count = dict.fromkeys(KINDS, 0)
        self.warned_at: float | None = None

    def add(self, kind: str, seconds: float) -> None:
        self.recent[kind].append(seconds)
        self.total[kind] += seconds
        self.count[kind] += 1

    @contextlib.contextmanager
    def timed(self, kind: str) -> Iterator[None]:
        began = time.perf_counter()
        try:
            yield
        finally:
            self.add(kind, time.perf_counter() - began)

    def median(self, kind: str) -> float | None:
        return statistics.median(self.recent[kind]) if self.recent[kind] else None

    def advice(self, finished: int, trial_seconds: float | None, parallel: int) -> str | None:
        """A warning when the median recent ask takes SLOW_SHARE of the time between
        completions (again each time it doubles), else None."""
        ask = self.median("ask")
        if ask is None or trial_seconds is None:
            return None
        between = trial_seconds / max(1, parallel)
        if ask < SLOW_SHARE * between or (self.warned_at is not None and ask < 2 * self.warned_at):
            return None
        self.warned_at = ask
        hint = HINTS.get(self.sampler, OTHER_HINT)
        return (f"slow asks: Optuna's ask takes {1000 * ask:.0f} ms (median of the last "
                f"{len(self.recent['ask'])}) at {finished} finished trials, {100 * ask / between:.0f}% "
                f"of the {1000 * between:.0f} ms between completions at parallel {parallel}: {hint}")

    def summary(self) -> str:
        parts = [f"{kind} {1000 * self.total[kind] / self.count[kind]:.1f} ms x {self.count[kind]}"
                 for kind in KINDS if self.count[kind]]
        return "optuna this session (mean wall per call): " + (", ".join(parts) or "no calls")
