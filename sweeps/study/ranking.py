"""Which trial is best: one decision, used by everything that shows or uses a best (`dqn-sweep
best`, `status`, `report`, the plots, the run's summary line, a resumed session's tally).

Tuning order: trials rank by objective, highest first (studies maximize); among equal
objectives the trial asked first (lowest number) ranks higher. Only COMPLETE trials with a
finite objective have one. The held-out phase retrains the `top_k` trials of this order.

Where held-out scores exist (trials-table column `heldout_value`, docs/heldout.md), they decide:
the trials with one rank above all others, those measured on more held-out seeds first (a phase
cut short leaves some on fewer; each config is compared on the most seeds), then by held-out
score, then in tuning order. So the answer is the top-k config with the best held-out score.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

HELDOUT_VALUE, HELDOUT_SEEDS = "heldout_value", "heldout_seeds"


def is_better(value: float, number: int, best_value: float | None, best_number: int | None) -> bool:
    """Whether trial `number` with objective `value` ranks above the best so far in tuning order
    (None: none yet)."""
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


def heldout_scored(trials: pd.DataFrame) -> pd.Series:
    """Which rows of a trials table have a held-out score."""
    if HELDOUT_VALUE not in trials:
        return pd.Series(False, index=trials.index)
    return pd.Series(np.isfinite(pd.to_numeric(trials[HELDOUT_VALUE], errors="coerce").astype(float)),
                     index=trials.index)


def ranked(trials: pd.DataFrame, heldout: bool = True) -> pd.DataFrame:
    """A trials table best first: held-out scores first where they exist (`heldout=False`:
    tuning order only), then by objective (ties: lowest number first; trials without an
    objective last)."""
    if trials.empty:
        return trials
    order = pd.DataFrame({"value": pd.to_numeric(trials["value"], errors="coerce"), "number": trials["number"]})
    keys, ascending = ["value", "number"], [False, True]
    if heldout and heldout_scored(trials).any():
        scored = heldout_scored(trials)
        order["scored"] = scored
        order["seeds"] = pd.to_numeric(trials[HELDOUT_SEEDS], errors="coerce").where(scored)
        order["heldout"] = pd.to_numeric(trials[HELDOUT_VALUE], errors="coerce").where(scored)
        keys, ascending = ["scored", "seeds", "heldout", *keys], [False, False, False, *ascending]
    order = order.sort_values(keys, ascending=ascending, na_position="last", kind="stable")
    return trials.loc[order.index].reset_index(drop=True)


def best_trial(trials: pd.DataFrame) -> pd.Series | None:
    """The best trial's row of a trials table (the answer), or None when no trial is COMPLETE."""
    done = complete(trials)
    return None if done.empty else ranked(done).iloc[0]


def top_k(trials: pd.DataFrame, k: int) -> list[int]:
    """The numbers of the `k` best COMPLETE trials in tuning order (the held-out phase's configs)."""
    return ranked(complete(trials), heldout=False)["number"].head(k).astype(int).tolist()


def how_chosen(trials: pd.DataFrame) -> str:
    """How `best_trial` chose, in words."""
    done = complete(trials)
    scored = done[heldout_scored(done)]
    if scored.empty:
        return "the best tuning objective (no held-out scores)"
    seeds = int(pd.to_numeric(scored[HELDOUT_SEEDS]).max())
    return (f"the best held-out score of the {len(scored)} configs retrained on held-out seeds "
            f"(the top by tuning objective; {seeds} seeds each)")
