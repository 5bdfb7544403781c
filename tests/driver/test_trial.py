"""A trial's reports without a cluster: the across-seed value at a step once every seed has
evaluated there (seeds arriving late and out of order), pruning never on the final evaluation."""

import optuna
import pytest

from sweeps.driver.trial import LiveTrial
from sweeps.study.spec import Objective

pytestmark = pytest.mark.timeout(30)
FINAL = Objective(metric="final")


def study_with_a_good_trial() -> optuna.Study:
    """A median pruner whose reference trial returned 100 at steps 100, 200 and 300."""
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.MedianPruner(n_startup_trials=1))
    good = study.ask()
    for step in (100, 200, 300):
        good.report(100.0, step)
    study.tell(good, 100.0)
    return study


def trial_run(study, seeds):
    configs = {seed: {"total_timesteps": 300, "seed": seed} for seed in seeds}
    return LiveTrial(study.ask(), list(seeds), [tuple(seeds)], None, configs, 0)


def evaluation(seed, step, value, **extra):
    return {"event": "eval", "seed": seed, "step": step, "mean_return": value, **extra}


def test_a_step_is_reported_once_every_seed_evaluated_there_whatever_the_order():
    study = study_with_a_good_trial()
    run = trial_run(study, [0, 1])
    arrivals = [evaluation(0, 100, 200.0), evaluation(0, 200, 210.0), evaluation(0, 300, 220.0, final=True),
                evaluation(1, 100, 100.0), evaluation(1, 200, 110.0), evaluation(1, 200, 999.0),  # repeated
                evaluation(1, 300, 120.0, final=True)]
    reported = []
    for event in arrivals:
        assert run.on_eval(event, FINAL) is False
        reported.append(dict(study.trials[1].intermediate_values))
    assert reported[2] == {}  # seed 1 has not evaluated yet
    assert reported[3] == {100: 150.0}
    assert study.trials[1].intermediate_values == {100: 150.0, 200: 160.0, 300: 170.0}


def test_the_pruner_acts_between_evaluations_but_never_on_the_final_one():
    study = study_with_a_good_trial()
    early = trial_run(study, [0])
    assert early.on_eval(evaluation(0, 100, 1.0), FINAL) is True and early.pruned
    study.tell(early.optuna_trial, state=optuna.trial.TrialState.PRUNED)
    late = trial_run(study, [0])
    late.reported.update({100, 200})  # as if reported before; events without "final" count by step
    assert late.on_eval(evaluation(0, 300, 1.0), FINAL) is False and not late.pruned
    assert late.optuna_trial.should_prune()  # the pruner would have pruned it there
    assert study.trials[2].intermediate_values == {300: 1.0}
