"""Which trial is best: one decision, used by everything that shows or uses a best (`dqn-sweep
best`, `status`, `report`, the plots, the run's summary line, a resumed session's tally).

Trials rank by objective, highest first (studies maximize); among equal objectives the trial
asked first (lowest number) ranks higher. Only COMPLETE trials with a finite objective have one.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd


def is_better(value: float, number: int, best_value: float | None, best_number: int | None) -> bool:
    """Whether trial `number` with objective `value` ranks above the best so far (None: none yet)."""
    if not math.isfinite(value):
        return False
    return best_value is None or (-value, number) < (-best_value, best_number)


def complete(trials: pd.DataFrame) -> pd.DataFrame:
    """The COMPLETE trials of a trials table that have a finite objective."""
    if trials.empty or "state" not in trials or "value" not in trials:
        return trials.iloc[0:0]
    values = pd.to_numeric(trials["value"], errors="coerce")
    keep = (trials["state"] == "COMPLETE") & np.isfinite(values)
    # assign the filtered values: a Series assigned to an empty frame would bring its index
    return trials[keep].assign(value=values[keep].astype(float))


def ranked(trials: pd.DataFrame) -> pd.DataFrame:
    """A trials table best first (ties: lowest number first; trials without an objective last)."""
    if trials.empty:
        return trials
    order = pd.DataFrame({"value": pd.to_numeric(trials["value"], errors="coerce"), "number": trials["number"]})
    order = order.sort_values(["value", "number"], ascending=[False, True], na_position="last", kind="stable")
    return trials.loc[order.index].reset_index(drop=True)


def best_trial(trials: pd.DataFrame) -> pd.Series | None:
    """The best trial's row of a trials table, or None when no trial is COMPLETE."""
    done = complete(trials)
    return None if done.empty else ranked(done).iloc[0]
