"""Several studies side by side (e.g. two samplers on the same environment): best-so-far
against trials and against wall time, and their trials by state."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from sweeps.reporting.figures import colors, new_figure, note, seconds_since
from sweeps.study.ranking import best_trial


def best_so_far(studies: Mapping[str, pd.DataFrame]) -> Figure:
    """Best objective so far vs finished trials and vs wall time, one line per study.

    `studies` maps a label (e.g. the sampler) to its trials table. Trials count in the order
    they finished (`datetime_complete`); wall time is from the study's first trial start.
    """
    fig = new_figure(11.0, 4.3)
    title = "Best objective so far"
    if not studies:
        return note(fig, "no studies given", title)
    by_trials, by_time = fig.subplots(1, 2)
    drawn = 0
    for color, (label, trials) in zip(colors(len(studies)), studies.items()):
        if trials.empty:
            continue
        finished = trials[pd.to_datetime(trials["datetime_complete"]).notna()].copy()
        finished = finished.sort_values(["datetime_complete", "number"])
        value = pd.to_numeric(finished["value"], errors="coerce")
        value[finished["state"] != "COMPLETE"] = np.nan
        best = value.cummax().to_numpy(dtype=float)
        if not np.isfinite(best).any():
            by_trials.plot([], [], color=color, label=f"{label} (no COMPLETE trial)")
            continue
        origin = pd.to_datetime(trials["datetime_start"]).min()
        seconds = seconds_since(finished["datetime_complete"], origin)
        count = np.arange(1, len(finished) + 1)
        final = np.nanmax(best)
        by_trials.step(count, best, where="post", color=color, lw=2, marker="o", ms=3,
                       label=f"{label} (best {final:.1f})")
        by_time.step(seconds, best, where="post", color=color, lw=2, marker="o", ms=3, label=label)
        drawn += 1
    by_trials.set_xlabel("finished trials")
    by_trials.xaxis.set_major_locator(MaxNLocator(integer=True))
    by_time.set_xlabel("wall seconds since the study started")
    for ax in (by_trials, by_time):
        ax.set_ylabel("best objective")
        ax.grid(alpha=0.3)
    if by_trials.get_legend_handles_labels()[0]:
        by_trials.legend(fontsize=8, loc="lower right")
    if not drawn:
        by_time.text(0.5, 0.5, "no COMPLETE trial in any study", ha="center", transform=by_time.transAxes)
    fig.suptitle(title)
    return fig


def state_counts(studies: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Trials per state per study (rows: study label), with the best objective."""
    rows = {}
    for label, trials in studies.items():
        counts = trials["state"].value_counts() if not trials.empty else pd.Series(dtype=int)
        best = best_trial(trials)
        rows[label] = {**counts.to_dict(), "trials": len(trials),
                       "best_value": None if best is None else float(best["value"]),
                       "best_trial": None if best is None else int(best["number"])}
    return pd.DataFrame.from_dict(rows, orient="index")
