"""Figures of one sweep's results, shared by the notebooks and the HTML report: learning curves,
the objective by trial, and the trials on the Dask workers (parameter figures are
`sweeps.reporting.param_plots`', several studies side by side `sweeps.reporting.compare`').

Every function takes the DataFrames of `sweeps.results.load` (plus plain options) and returns a
figure (`sweeps.reporting.figures`). Edge cases are part of the contract: no trial, no COMPLETE
trial, a single trial, missing timestamps or workers all give a figure, with a note where there
is nothing to draw.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from sweeps.reporting.figures import STATE_COLORS, colors, new_figure, note, seconds_since
from sweeps.study.ranking import best_trial, complete, ranked


def learning_curves(evals: pd.DataFrame, trials: pd.DataFrame, top: int = 5) -> Figure:
    """Eval return vs env steps for the `top` best trials: mean over seeds, band across seeds.

    With several seeds the band spans the seeds' min..max of their mean eval return; with one
    seed it is that run's mean ± std over evaluation episodes. Without COMPLETE trials, the
    trials with the most evaluation steps are shown (e.g. pruned ones).
    """
    fig = new_figure()
    title = f"Learning curves of the top {top} trials"
    if evals.empty:
        return note(fig, "no evaluations recorded yet", title)
    done = complete(trials)
    if not done.empty:
        chosen = ranked(done)["number"].head(top).tolist()
        chosen = [n for n in chosen if n in set(evals["trial"])]
    else:
        chosen = []
    if not chosen:
        reach = evals.groupby("trial")["step"].max().sort_values(ascending=False)
        chosen = reach.index[:top].tolist()
        title = f"Learning curves ({len(chosen)} trials, none COMPLETE)"
    values = done.set_index("number")["value"] if not done.empty else pd.Series(dtype=float)
    ax = fig.add_subplot()
    palette = colors(len(chosen))
    for color, number in zip(palette, chosen):
        runs = evals[evals["trial"] == number]
        per_step = runs.groupby("step")
        mean = per_step["mean_return"].mean()
        steps = mean.index.to_numpy(dtype=float)
        if runs["seed"].nunique() > 1:
            low, high = per_step["mean_return"].min(), per_step["mean_return"].max()
        else:
            std = per_step["std_return"].mean().fillna(0.0)
            low, high = mean - std, mean + std
        label = f"trial {number}"
        if number in values.index:
            label += f" ({values[number]:.1f})"
        if runs["seed"].nunique() > 1:
            label += f", {runs['seed'].nunique()} seeds"
        ax.plot(steps, mean.to_numpy(), marker="o", ms=3, color=color, label=label)
        ax.fill_between(steps, low.to_numpy(dtype=float), high.to_numpy(dtype=float), color=color, alpha=0.2)
    ax.set_xlabel("env steps")
    ax.set_ylabel("eval return")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return fig


def objective_history(trials: pd.DataFrame) -> Figure:
    """Objective per trial number with the running best and the answer (a star: the best trial,
    `sweeps.study.ranking`); pruned/failed trials as ticks."""
    fig = new_figure()
    title = "Objective by trial (running best)"
    if trials.empty:
        return note(fig, "no trials yet", title)
    ax = fig.add_subplot()
    done = complete(trials).sort_values("number")
    if not done.empty:
        ax.scatter(done["number"], done["value"], color=STATE_COLORS["COMPLETE"], zorder=3,
                   label="COMPLETE")
        numbers = trials["number"].sort_values().to_numpy()
        best = done.set_index("number")["value"].reindex(numbers).cummax()
        ax.step(numbers, best.to_numpy(dtype=float), where="post", color="#264653", lw=2,
                label="running best")
        answer = best_trial(trials)  # the held-out phase may choose another than the running best
        ax.scatter([answer["number"]], [answer["value"]], marker="*", s=220, color="#e76f51", zorder=4,
                   label=f"the answer (trial {int(answer['number'])})")
    else:
        ax.text(0.5, 0.6, "no COMPLETE trial", ha="center", transform=ax.transAxes, color="#555555")
    transform = ax.get_xaxis_transform()
    for state in ("PRUNED", "FAIL", "RUNNING"):
        numbers = trials.loc[trials["state"] == state, "number"]
        if len(numbers):
            ax.scatter(numbers, np.full(len(numbers), 0.03), transform=transform, marker="|", s=200,
                       color=STATE_COLORS[state], label=f"{state} ({len(numbers)})", clip_on=False)
    ax.set_xlabel("trial number")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("objective")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="best")
    lo, hi = trials["number"].min(), trials["number"].max()
    ax.set_xlim(lo - 0.5, hi + 0.5)
    return fig


LANE_SLACK_S = 1.0  # a slot is refilled before its last trial's outcome is read and told


def worker_timeline(trials: pd.DataFrame) -> Figure:
    """Trials as bars from start to end on their Dask worker, coloured by state.

    Gaps between bars are idle workers; the bars' overlap shows how many trials ran at once.
    Trials without a start time (never started) are left out; RUNNING ones end at the last
    recorded time. A trial starts when it was asked or, when later, its task's seconds before
    its end (a blind sampler's next trial is asked before a slot frees, `sweeps.driver`); a
    trial told up to LANE_SLACK_S after the next one started on its worker shares its row.
    """
    fig = new_figure(9.0, 1.6 + 0.55 * max(2, _worker_count(trials)))
    title = "Trials on workers"
    if trials.empty or "datetime_start" not in trials:
        return note(fig, "no trials yet", title)
    started = trials[pd.to_datetime(trials["datetime_start"]).notna()].copy()
    if started.empty:
        return note(fig, "no trial has started", title)
    start = pd.to_datetime(started["datetime_start"])
    end = pd.to_datetime(started["datetime_complete"])
    if "wall_seconds" in started:
        task_start = end - pd.to_timedelta(started["wall_seconds"], unit="s")
        start = start.where(~(task_start > start), task_start)
    origin = start.min()
    last = pd.concat([start, end]).max()
    started["t0"] = seconds_since(start, origin)
    started["t1"] = seconds_since(end.fillna(last), origin)
    worker = started["worker"] if "worker" in started else pd.Series(None, index=started.index)
    started["lane_name"] = worker.fillna("unknown").astype(str).map(_short_worker)
    started = started.sort_values(["lane_name", "t0"])
    lanes: list[tuple[str, float]] = []  # (worker, busy until) per drawn row
    rows = []
    for _, trial in started.iterrows():
        # a worker running two trials at once (several threads) gets a second row
        for i, (name, busy) in enumerate(lanes):
            if name == trial["lane_name"] and busy <= trial["t0"] + LANE_SLACK_S:
                lanes[i] = (name, trial["t1"])
                rows.append(i)
                break
        else:
            lanes.append((trial["lane_name"], trial["t1"]))
            rows.append(len(lanes) - 1)
    started["row"] = rows
    ax = fig.add_subplot()
    total = max(float(started["t1"].max()), 1e-3)
    for _, trial in started.iterrows():
        width = max(trial["t1"] - trial["t0"], total * 0.002)
        color = STATE_COLORS.get(trial["state"], "#6c757d")
        ax.barh(trial["row"], width, left=trial["t0"], height=0.7, color=color, edgecolor="white")
        if width > total * 0.04:
            ax.text(trial["t0"] + width / 2, trial["row"], str(trial["number"]), ha="center",
                    va="center", fontsize=8, color="black")
    ax.set_yticks(range(len(lanes)), [name for name, _ in lanes], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(f"seconds since the first trial started ({origin:%Y-%m-%d %H:%M:%S})")
    states = [s for s in STATE_COLORS if (started["state"] == s).any()]
    busy = (started["t1"] - started["t0"]).sum() / (total * len({n for n, _ in lanes}))
    ax.legend(handles=[Patch(color=STATE_COLORS[s], label=s) for s in states], fontsize=8,
              loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.set_title(f"{title}: {len(started)} trials, workers busy {100 * min(busy, 1):.0f}% of the span")
    ax.grid(axis="x", alpha=0.3)
    return fig


def _worker_count(trials: pd.DataFrame) -> int:
    return int(trials["worker"].nunique()) if "worker" in trials and not trials.empty else 1


def _short_worker(address: str) -> str:
    return address.removeprefix("tcp://").removeprefix("tls://")
