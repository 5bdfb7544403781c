"""Figures of the searched parameters of one sweep: importance, objective against each
parameter, parallel coordinates. Numeric, categorical and list-valued parameters alike
(`sweeps.reporting.figures.param_axis`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from sweeps.reporting.figures import PARAM_PREFIX, new_figure, note, param_axis, param_names, scalar
from sweeps.study.ranking import complete


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
            raw = series.map(scalar).astype(float)
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
