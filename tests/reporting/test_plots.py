"""sweeps.reporting figures on synthetic tables: every figure draws (no exception, not blank) for the
edge cases: no trial, no COMPLETE trial, one trial, missing times/workers, list-valued params."""

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from sweeps.reporting import compare, figures, param_plots, plots
from sweeps.results import load
from sweeps.store.reader import EVAL_COLUMNS
from sweeps.study import ranking

pytestmark = pytest.mark.timeout(60)
T0 = dt.datetime(2026, 1, 1, 12, 0, 0)


def make_trials(n: int, states=None, list_params=False) -> pd.DataFrame:
    rng = np.random.default_rng(n)
    rows = []
    for i in range(n):
        state = states[i] if states else "COMPLETE"
        lr = float(10 ** rng.uniform(-4, -2))
        arch = [[32], [64, 64]][i % 2]
        rows.append({
            "number": i, "state": state,
            "value": 100 * (1 + np.log10(lr) / 4) + (20 if i % 2 else 0) if state == "COMPLETE" else None,
            "datetime_start": T0 + dt.timedelta(seconds=5 * i),
            "datetime_complete": T0 + dt.timedelta(seconds=5 * i + 9) if state != "RUNNING" else None,
            "params_learning_rate": lr, "params_gamma": [0.95, 0.99][i % 2],
            "params_net_arch": arch if list_params else str(arch).replace(" ", ""),
            "params_double": bool(i % 2),
            "seeds": [0, 1], "env_steps": 2000, "wall_seconds": 9.0, "steps_per_second": 222.0,
            "worker": f"tcp://127.0.0.1:{4000 + i % 2}", "fail_reason": "boom\nline 2" if state == "FAIL" else None,
            "last_step": 2000.0,
        })
    return pd.DataFrame(rows)


def make_evals(trials: pd.DataFrame, seeds=(0, 1)) -> pd.DataFrame:
    rows = [
        {"trial": t, "seed": s, "step": step, "mean_return": step / 100 + t + s, "std_return": 1.0,
         "min_return": 0.0, "max_return": 50.0}
        for t in trials["number"] for s in seeds for step in (500, 1000, 1500, 2000)
    ]
    return pd.DataFrame(rows, columns=EVAL_COLUMNS)


def all_figures(trials, evals):
    return {
        "learning_curves": plots.learning_curves(evals, trials),
        "objective_history": plots.objective_history(trials),
        "param_importance": param_plots.param_importance(trials),
        "param_slices": param_plots.param_slices(trials),
        "parallel_coordinates": param_plots.parallel_coordinates(trials),
        "worker_timeline": plots.worker_timeline(trials),
        "best_so_far": compare.best_so_far({"a": trials, "b": trials.iloc[:1]}),
    }


@pytest.mark.parametrize("case", ["many", "list_params", "one", "no_complete", "running", "empty"])
def test_every_figure_draws(case, not_blank):
    trials = {
        "many": lambda: make_trials(8, ["COMPLETE"] * 5 + ["PRUNED", "FAIL", "COMPLETE"]),
        "list_params": lambda: make_trials(5, list_params=True),
        "one": lambda: make_trials(1),
        "no_complete": lambda: make_trials(3, ["FAIL", "PRUNED", "FAIL"]),
        "running": lambda: make_trials(3, ["COMPLETE", "RUNNING", "COMPLETE"]).assign(worker=None),
        "empty": lambda: load("/nonexistent")["trials"],
    }[case]()
    evals = make_evals(trials) if not trials.empty else load("/nonexistent")["evals"]
    for name, fig in all_figures(trials, evals).items():
        png = figures.png_bytes(fig)
        assert png.startswith(b"\x89PNG"), name
        not_blank(png, min_colors=4, min_drawn=0.001)


def test_rich_figures_have_content(tmp_path, not_blank):
    trials = make_trials(8, ["COMPLETE"] * 5 + ["PRUNED", "FAIL", "COMPLETE"], list_params=True)
    for name, fig in all_figures(trials, make_evals(trials)).items():
        not_blank(figures.save_png(fig, tmp_path / f"{name}.png"), min_colors=32)


def test_importance_finds_the_parameter_that_matters():
    trials = make_trials(12)
    trials["value"] = np.log10(trials["params_learning_rate"])  # only the learning rate matters
    trials["params_gamma"] = 0.99  # never varied
    importance = param_plots.param_importances(trials)
    assert importance.index[0] == "learning_rate"
    assert importance["gamma"] == 0
    assert importance.sum() == pytest.approx(1.0)


def test_best_trial_and_ranking():
    trials = make_trials(4, ["COMPLETE", "FAIL", "COMPLETE", "COMPLETE"])
    trials["value"] = [1.0, None, 3.0, 3.0]
    assert ranking.best_trial(trials)["number"] == 2  # ties: the earliest
    assert ranking.ranked(trials)["number"].tolist()[:3] == [2, 3, 0]
    assert ranking.best_trial(make_trials(2, ["FAIL", "PRUNED"])) is None


def test_param_axis_categorical_lists_and_log_scale():
    codes, axis = figures.param_axis(pd.Series([[64, 64], [32], [64, 64]]))
    assert axis == {"kind": "categorical", "categories": ["[32]", "[64, 64]"]}
    assert codes.tolist() == [1.0, 0.0, 1.0]
    _, axis = figures.param_axis(pd.Series([1e-4, 1e-2]))
    assert axis == {"kind": "numeric", "scale": "log"}
    _, axis = figures.param_axis(pd.Series([True, False]))
    assert axis["kind"] == "categorical"


def test_trials_asked_before_their_slot_freed_share_their_workers_row():
    """A blind sampler's next trial is asked while its worker still runs the last one, and a
    trial is told just after the next one started: each bar starts when its task ran."""
    rows = [{"number": i, "state": "COMPLETE", "value": 1.0, "worker": "tcp://127.0.0.1:4000",
             "datetime_start": T0 + dt.timedelta(seconds=9 * i - 3),  # asked 3 s early
             "datetime_complete": T0 + dt.timedelta(seconds=9 * i + 9.2), "wall_seconds": 9.0}
            for i in range(4)]
    fig = plots.worker_timeline(pd.DataFrame(rows))
    assert len(fig.axes[0].get_yticks()) == 1
