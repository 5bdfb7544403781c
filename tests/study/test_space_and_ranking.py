"""The search space's grid (its size is the grid's own) and the one decision of which trial is best."""

import itertools
import math

import optuna
import pandas as pd
import pytest

from sweeps.driver.asking import budget_trials
from sweeps.store import optuna_private
from sweeps.study.loading import parse_spec
from sweeps.study.ranking import best_trial, complete, is_better, ranked
from sweeps.study.space import grid_size, grid_space, params_to_config, suggest

optuna.logging.set_verbosity(optuna.logging.WARNING)


def grid_spec(**space):
    return parse_spec({"study": "g", "env_id": "CartPole-v1", "space": space, "sampler": {"name": "grid"},
                       "budget": {"n_trials": 50}})


def distinct_grid_trials(spec) -> set[str]:
    """Ask the grid sampler until it has drawn every point of its grid (it repeats after)."""
    study = optuna.create_study(sampler=optuna.samplers.GridSampler(grid_space(spec), seed=0))
    seen = set()
    for _ in range(60):
        trial = study.ask()
        seen.add(repr(sorted(suggest(trial, spec).items())))
        optuna_private.tell(study, trial, 0.0)
        if study.sampler.is_exhausted(study):
            break
    return seen


@pytest.mark.parametrize("space", [
    {"batch_size": {"type": "int", "low": 1, "high": 12, "step": 4}},  # 1, 5, 9: three points, not four
    {"exploration_fraction": {"type": "float", "low": 0.1, "high": 1.0, "step": 0.35}},  # .1, .45, .8
    {"gamma": {"type": "categorical", "choices": [0.9, 0.99]},
     "net_arch": {"type": "categorical", "choices": [[64], [64, 64], [256, 256]]}},
])
def test_grid_size_is_the_number_of_points_the_grid_sampler_draws(space):
    spec = grid_spec(**space)
    assert grid_size(spec) == len(distinct_grid_trials(spec))
    assert budget_trials(spec) == grid_size(spec)


def test_the_int_range_of_the_old_grid_size_bug():
    spec = grid_spec(batch_size={"type": "int", "low": 1, "high": 12, "step": 4})
    assert grid_space(spec) == {"batch_size": [1, 5, 9]}


def test_params_from_a_trials_table_come_back_as_the_spaces_types():
    spec = grid_spec(batch_size={"type": "int", "low": 16, "high": 64, "step": 16},
                     net_arch={"type": "categorical", "choices": [[64], [64, 64]]})
    config = params_to_config({"batch_size": 32.0, "net_arch": "[64, 64]"}, spec)
    assert config == {"batch_size": 32, "net_arch": [64, 64]}
    assert type(config["batch_size"]) is int


TRIALS = pd.DataFrame({
    "number": [0, 1, 2, 3, 4, 5],
    "state": ["COMPLETE", "FAIL", "COMPLETE", "COMPLETE", "PRUNED", "COMPLETE"],
    "value": [5.0, None, 9.0, 9.0, 12.0, float("nan")],
})


def test_best_is_the_highest_complete_objective_and_ties_go_to_the_earlier_trial():
    assert int(best_trial(TRIALS)["number"]) == 2
    assert ranked(TRIALS)["number"].tolist()[:3] == [4, 2, 3]  # the table ranked, PRUNED included
    assert ranked(complete(TRIALS))["number"].tolist() == [2, 3, 0]
    assert best_trial(TRIALS[TRIALS["state"] != "COMPLETE"]) is None


@pytest.mark.parametrize("order", list(itertools.permutations(range(6)))[::37])
def test_the_running_best_agrees_with_the_table_whatever_order_trials_finish_in(order):
    best_value, best_number = None, None
    for i in order:
        row = TRIALS.iloc[i]
        complete_now = row["state"] == "COMPLETE" and not math.isnan(row["value"])
        if complete_now and is_better(float(row["value"]), int(row["number"]), best_value, best_number):
            best_value, best_number = float(row["value"]), int(row["number"])
    assert best_number == int(best_trial(TRIALS)["number"])
