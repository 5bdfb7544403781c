"""Figures of a sweep's results tables, shared by the notebooks and `sweeps.report`.

Every function takes the DataFrames of `sweeps.results.load` (plus plain options) and returns a
`matplotlib.figure.Figure` drawn on the non-interactive Agg canvas. No pyplot: nothing global is
touched, figures are freed when dropped, and the module works on a headless box. Notebooks show
the returned figure (with `%matplotlib inline`); `save_png`/`png_bytes` write it.

Edge cases are part of the contract: no trial, no COMPLETE trial, a single trial, missing
timestamps or workers, and categorical or list-valued parameters (`net_arch` is stored as the
JSON text `"[64, 64]"`) all give a figure, with a note where there is nothing to draw.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

STATE_COLORS = {
    "COMPLETE": "#2a9d8f",
    "PRUNED": "#e9c46a",
    "FAIL": "#e63946",
    "RUNNING": "#457b9d",
    "WAITING": "#adb5bd",
}
PARAM_PREFIX = "params_"


# --- helpers -----------------------------------------------------------------------------


def new_figure(width: float = 8.0, height: float = 4.5) -> Figure:
    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def note(fig: Figure, text: str, title: str | None = None) -> Figure:
    """A figure that says why there is nothing to draw (keeps callers free of special cases)."""
    ax = fig.add_subplot()
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=12, color="#555555",
            transform=ax.transAxes, wrap=True)
    return fig


def png_bytes(fig: Figure, dpi: int = 100) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def save_png(fig: Figure, path: str | Path, dpi: int = 100) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=dpi)
    return path


def param_names(trials: pd.DataFrame) -> list[str]:
    """The searched parameters (without the `params_` prefix), in table order."""
    return [c[len(PARAM_PREFIX):] for c in trials.columns if c.startswith(PARAM_PREFIX)]


def complete(trials: pd.DataFrame) -> pd.DataFrame:
    """COMPLETE trials with a finite objective."""
    if trials.empty or "state" not in trials:
        return trials.iloc[0:0]
    if "value" not in trials:
        return trials.iloc[0:0]
    values = pd.to_numeric(trials["value"], errors="coerce")
    keep = (trials["state"] == "COMPLETE") & np.isfinite(values)
    # assign the filtered values: a Series assigned to an empty frame would bring its index
    return trials[keep].assign(value=values[keep].astype(float))


def ranked(trials: pd.DataFrame) -> pd.DataFrame:
    """The trials table sorted by objective (best first; trials without one last)."""
    if trials.empty:
        return trials
    values = pd.to_numeric(trials["value"], errors="coerce")
    order = values.sort_values(ascending=False, na_position="last").index
    return trials.loc[order].reset_index(drop=True)


def best_trial(trials: pd.DataFrame) -> pd.Series | None:
    """The COMPLETE trial with the highest objective (ties: the earliest), or None."""
    done = complete(trials)
    if done.empty:
        return None
    return done.sort_values(["value", "number"], ascending=[False, True]).iloc[0]


def _scalar(value: Any) -> Any:
    """List/array/dict values become JSON text, so they compare and sort as categories."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value)
    return value


def param_axis(series: pd.Series) -> tuple[np.ndarray, dict[str, Any]]:
    """Positions of one parameter's values on an axis, and how to label it.

    Numbers map to themselves (`scale="log"` when positive and spanning >= 30x);
    anything else (strings, lists such as net_arch, booleans) maps to category codes 0..n-1.
    """
    values = series.map(_scalar)
    numeric = pd.to_numeric(values, errors="coerce")
    is_bool = values.map(lambda v: isinstance(v, (bool, np.bool_))).any()
    if not is_bool and numeric.notna().sum() == values.notna().sum() and values.notna().any():
        x = numeric.to_numpy(dtype=float)
        finite = x[np.isfinite(x)]
        log = bool(len(finite) and finite.min() > 0 and finite.max() / finite.min() >= 30)
        return x, {"kind": "numeric", "scale": "log" if log else "linear"}
    labels = values.map(lambda v: "—" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v))
    categories = sorted(labels.unique(), key=_category_key)
    codes = labels.map({c: i for i, c in enumerate(categories)}).to_numpy(dtype=float)
    return codes, {"kind": "categorical", "categories": categories}


def _category_key(label: str) -> tuple:
    try:
        return (0, float(label), label)
    except ValueError:
        return (1, 0.0, label)


def _seconds(times: pd.Series, origin: pd.Timestamp) -> np.ndarray:
    return ((pd.to_datetime(times) - origin).dt.total_seconds()).to_numpy(dtype=float)


# --- one study -----------------------------------------------------------------------------


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
    colors = _cycle(len(chosen))
    for color, number in zip(colors, chosen):
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
    """Objective per trial number with the running best; pruned/failed trials as ticks."""
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


def param_importances(trials: pd.DataFrame, study: Any = None) -> pd.Series:
    """Importance of each searched parameter for the objective, summing to 1.

    With an Optuna `study` (and >= 2 COMPLETE trials) Optuna's `get_param_importances` (its
    default evaluator);
    otherwise, or if that fails, from the trials table: |Spearman rank correlation| for
    numeric params, the correlation ratio eta for categorical ones. Parameters that never varied
    get 0. `series.attrs["method"]` names the method used.
    """
    names = param_names(trials)
    done = complete(trials)
    if study is not None and len(done) >= 2:
        try:
            import warnings

            import optuna

            with warnings.catch_warnings():  # e.g. "importances will be equal" on tied objectives
                warnings.simplefilter("ignore")
                found = optuna.importance.get_param_importances(study)
            series = pd.Series(found, dtype=float).reindex(names).fillna(0.0)
            if series.sum() > 0:
                series = (series / series.sum()).sort_values(ascending=False)
                series.attrs["method"] = "Optuna get_param_importances"
                return series
        except Exception:  # noqa: BLE001, S110 - fall back to the table (e.g. a param never varied)
            pass
    scores = {}
    y = done["value"].to_numpy(dtype=float) if not done.empty else np.array([])
    for name in names:
        if len(done) < 2 or np.ptp(y) == 0:
            scores[name] = 0.0
            continue
        x, axis = param_axis(done[PARAM_PREFIX + name])
        ok = np.isfinite(x)
        if ok.sum() < 2 or np.unique(x[ok]).size < 2:
            scores[name] = 0.0
        elif axis["kind"] == "numeric":
            rho = pd.Series(x[ok]).rank().corr(pd.Series(y[ok]).rank())
            scores[name] = 0.0 if not np.isfinite(rho) else abs(float(rho))
        else:
            groups = pd.Series(y[ok]).groupby(x[ok])
            between = (groups.count() * (groups.mean() - y[ok].mean()) ** 2).sum()
            total = ((y[ok] - y[ok].mean()) ** 2).sum()
            scores[name] = float(np.sqrt(between / total)) if total > 0 else 0.0
    series = pd.Series(scores, dtype=float)
    if series.sum() > 0:
        series = series / series.sum()
    series = series.sort_values(ascending=False)
    series.attrs["method"] = "rank correlation / correlation ratio"
    return series


def param_importance(trials: pd.DataFrame, study: Any = None) -> Figure:
    """Horizontal bars of `param_importances` (see there for the method)."""
    fig = new_figure(7.0, 0.6 + 0.5 * max(2, len(param_names(trials))))
    title = "Hyperparameter importance"
    names = param_names(trials)
    if not names:
        return note(fig, "the study searched no parameters", title)
    done = complete(trials)
    if len(done) < 2:
        return note(fig, f"importance needs >= 2 COMPLETE trials (have {len(done)})", title)
    series = param_importances(trials, study)
    if series.sum() == 0:
        return note(fig, "the objective did not vary with any parameter", title)
    ax = fig.add_subplot()
    ordered = series.iloc[::-1]
    ax.barh(ordered.index, ordered.to_numpy(), color="#457b9d")
    for y, v in enumerate(ordered.to_numpy()):
        ax.text(v, y, f" {v:.2f}", va="center", fontsize=9)
    ax.set_xlim(0, max(1.0, float(series.max()) * 1.15))
    ax.set_title(f"{title} ({series.attrs['method']}, {len(done)} trials)", fontsize=10)
    ax.set_xlabel("importance (sums to 1)")
    return fig


def param_slices(trials: pd.DataFrame) -> Figure:
    """One panel per parameter: objective vs the parameter's value, coloured by trial number."""
    names = param_names(trials)
    ncols = min(3, max(1, len(names)))
    nrows = max(1, -(-len(names) // ncols))
    fig = new_figure(4.0 * ncols, 3.4 * nrows)
    title = "Objective vs each parameter"
    if not names:
        return note(fig, "the study searched no parameters", title)
    done = complete(trials)
    if done.empty:
        return note(fig, "no COMPLETE trial to plot", title)
    norm = Normalize(vmin=float(trials["number"].min()), vmax=float(max(trials["number"].max(), 1)))
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    rng = np.random.default_rng(0)
    scatter = None
    for ax, name in zip(axes, names):
        x, axis = param_axis(done[PARAM_PREFIX + name])
        if axis["kind"] == "categorical":
            x = x + rng.uniform(-0.12, 0.12, size=len(x))
            ax.set_xticks(range(len(axis["categories"])), axis["categories"], rotation=20, fontsize=8)
            ax.set_xlim(-0.5, len(axis["categories"]) - 0.5)
        elif axis["scale"] == "log":
            ax.set_xscale("log")
        scatter = ax.scatter(x, done["value"], c=done["number"], cmap="viridis", norm=norm,
                             edgecolors="k", linewidths=0.3, s=36)
        ax.set_xlabel(name)
        ax.set_ylabel("objective")
        ax.grid(alpha=0.3)
    for ax in axes[len(names):]:
        ax.set_axis_off()
    if scatter is not None:
        fig.colorbar(scatter, ax=axes[: len(names)].tolist(), label="trial number", shrink=0.8)
    fig.suptitle(title)
    return fig


def parallel_coordinates(trials: pd.DataFrame) -> Figure:
    """Each COMPLETE trial as a line through one vertical axis per parameter, then the objective.

    Axes are scaled to [0, 1] (log for parameters spanning >= 30x); categories are spread
    evenly. Line colour is the objective (best: brightest, drawn on top).
    """
    names = param_names(trials)
    fig = new_figure(max(6.0, 1.9 * (len(names) + 1)), 4.5)
    title = "Parallel coordinates (COMPLETE trials)"
    done = complete(trials)
    if done.empty:
        return note(fig, "no COMPLETE trial to plot", title)
    columns, labels = [], []
    for name in names + ["objective"]:
        series = done["value"] if name == "objective" else done[PARAM_PREFIX + name]
        x, axis = param_axis(series)
        if axis["kind"] == "numeric" and axis["scale"] == "log":
            x = np.log10(x)
        finite = x[np.isfinite(x)]
        lo, hi = (finite.min(), finite.max()) if len(finite) else (0.0, 1.0)
        if axis["kind"] == "categorical":
            lo, hi = 0.0, max(1.0, len(axis["categories"]) - 1.0)
        span = hi - lo if hi > lo else 1.0
        y = (x - lo) / span if hi > lo else np.full_like(x, 0.5)
        columns.append(y)
        if axis["kind"] == "categorical":
            ticks = [(i - lo) / span for i in range(len(axis["categories"]))]
            tick_labels = list(axis["categories"])
            if len(ticks) == 1:
                ticks = [0.5]
        else:
            raw = series.map(_scalar).astype(float)
            ticks = [0.0, 1.0] if hi > lo else [0.5]
            tick_labels = [f"{raw.min():.3g}", f"{raw.max():.3g}"] if hi > lo else [f"{raw.min():.3g}"]
        labels.append((name, ticks, tick_labels))
    data = np.vstack(columns).T
    values = done["value"].to_numpy(dtype=float)
    ax = fig.add_subplot()
    norm = Normalize(vmin=values.min(), vmax=values.max() if values.max() > values.min() else values.min() + 1)
    cmap = fig.colorbar(
        ax.scatter([], [], c=[], cmap="viridis", norm=norm), ax=ax, label="objective"
    ).cmap
    xs = np.arange(len(labels))
    for row, value in sorted(zip(data, values), key=lambda pair: pair[1]):
        ax.plot(xs, row, color=cmap(norm(value)), lw=1.8, alpha=0.85, marker="o", ms=3)
    for i, (name, ticks, tick_labels) in enumerate(labels):
        ax.axvline(i, color="#333333", lw=0.8)
        for t, text in zip(ticks, tick_labels):
            ax.text(i + 0.03, t, text, fontsize=7, va="center", ha="left", color="#333333")
    ax.set_xticks(xs, [name for name, _, _ in labels])
    ax.set_yticks([])
    ax.set_ylim(-0.08, 1.08)
    ax.set_xlim(-0.2, len(labels) - 0.6)
    ax.set_title(f"{title}, {len(done)} trials")
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
    started["t0"] = _seconds(start, origin)
    started["t1"] = _seconds(end.fillna(last), origin)
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


# --- several studies -------------------------------------------------------------------------


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
    for color, (label, trials) in zip(_cycle(len(studies)), studies.items()):
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
        seconds = _seconds(finished["datetime_complete"], origin)
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


def _cycle(n: int) -> Sequence[Any]:
    palette = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2",
               "#17becf", "#bcbd22", "#7f7f7f"]
    return [palette[i % len(palette)] for i in range(n)]


__all__ = [
    "best_so_far",
    "best_trial",
    "complete",
    "learning_curves",
    "objective_history",
    "parallel_coordinates",
    "param_importance",
    "param_importances",
    "param_slices",
    "png_bytes",
    "ranked",
    "save_png",
    "state_counts",
    "worker_timeline",
]
