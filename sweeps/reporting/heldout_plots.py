"""Figures of the held-out phase (docs/heldout.md), for the report and the notebooks: the
optimism gap (each retrained config's tuning objective against its held-out score with its
interval, beside the baseline) and the held-out learning curves with bands.

They take the trials table, the held-out table of `sweeps.results.load` and its figures
(`sweeps.study.scores.figures`); without held-out runs they draw a note saying how to get some.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from sweeps.reporting.figures import colors, new_figure, note
from sweeps.study import scores
from sweeps.study.heldout import BASELINE, label
from sweeps.study.ranking import best_trial

NONE_YET = "no held-out runs yet: `dqn-sweep heldout RUN_DIR` retrains the top trials on held-out seeds"


def configs_in_order(trials: pd.DataFrame, figures: pd.DataFrame) -> list[str]:
    """The retrained configs, best held-out score first, then the baseline."""
    ordered = figures[figures["config"] != BASELINE].sort_values(["seeds", "value", "trial"],
                                                                  ascending=[False, False, True])
    return ordered["config"].tolist() + ([BASELINE] if (figures["config"] == BASELINE).any() else [])


def optimism_gap(trials: pd.DataFrame, figures: pd.DataFrame) -> Figure:
    """Per retrained config: its tuning objective (open circle), its held-out mean with the 95%
    interval (bar) and IQM (diamond); the baseline as a band. The answer is starred."""
    fig = new_figure()
    title = "Tuning objective vs held-out score (the optimism gap)"
    if figures.empty:
        return note(fig, NONE_YET, title)
    order = configs_in_order(trials, figures)
    rows = figures.set_index("config").loc[order]
    tuning = trials.set_index("number")["value"]
    chosen = best_trial(trials)
    ax = fig.add_subplot()
    x = np.arange(len(order))
    low = (rows["mean"] - rows["mean_low"]).fillna(0).clip(lower=0)
    high = (rows["mean_high"] - rows["mean"]).fillna(0).clip(lower=0)
    ax.errorbar(x, rows["mean"], yerr=[low, high], fmt="o", color="#264653", capsize=4, label="held-out mean, 95% CI")
    ax.scatter(x, rows["iqm"], marker="D", color="#2a9d8f", s=25, zorder=3, label="held-out IQM")
    for i, config in enumerate(order):
        trial = rows.loc[config, "trial"]
        if config == BASELINE or pd.isna(trial) or int(trial) not in tuning.index:
            continue
        tuned = float(tuning[int(trial)])
        ax.scatter([i], [tuned], facecolors="none", edgecolors="#e76f51", s=60, zorder=3,
                   label="tuning objective" if i == 0 else None)
        ax.annotate("", xy=(i, rows.loc[config, "mean"]), xytext=(i, tuned),
                    arrowprops={"arrowstyle": "->", "color": "#e76f51", "alpha": 0.6})
    if BASELINE in rows.index and not pd.isna(rows.loc[BASELINE, "mean_low"]):
        ax.axhspan(rows.loc[BASELINE, "mean_low"], rows.loc[BASELINE, "mean_high"], color="#adb5bd", alpha=0.3,
                   label="baseline mean, 95% CI")
    names = [f"{c}{' *' if chosen is not None and c == label(int(chosen['number'])) else ''}" for c in order]
    ax.set_xticks(x, names, fontsize=8)
    ax.set_ylabel("return (the objective's metric)")
    ax.set_title(f"{title}; * the answer")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return fig


def heldout_curves(heldout: pd.DataFrame, trials: pd.DataFrame, figures: pd.DataFrame) -> Figure:
    """Eval return vs env steps on the held-out seeds, one line per config (mean over seeds) with
    its 95% bootstrap interval as a band."""
    fig = new_figure()
    title = "Learning curves on held-out seeds (band: 95% CI of the mean over seeds)"
    if heldout.empty or figures.empty:
        return note(fig, NONE_YET, title)
    ax = fig.add_subplot()
    order = configs_in_order(trials, figures)
    for color, config in zip(colors(len(order)), order):
        runs = heldout[heldout["config"] == config]
        steps, means, lows, highs = [], [], [], []
        for step, at in runs.groupby("step", sort=True):
            interval = scores.estimate(at["mean_return"].to_numpy(dtype=float), np.mean)
            steps.append(step)
            means.append(interval.value)
            lows.append(interval.value if np.isnan(interval.low) else interval.low)
            highs.append(interval.value if np.isnan(interval.high) else interval.high)
        style = {"ls": "--"} if config == BASELINE else {}
        ax.plot(steps, means, marker="o", ms=3, color=color, label=f"{config}, {runs['seed'].nunique()} seeds", **style)
        ax.fill_between(steps, lows, highs, color=color, alpha=0.15)
    ax.set_xlabel("env steps")
    ax.set_ylabel("eval return")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return fig
