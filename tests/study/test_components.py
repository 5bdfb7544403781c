"""The samplers and pruners a study may name, as the driver relies on them: a sampler marked
blind draws the same trials whatever the results (the driver asks ahead for it), TPE gets a
constant liar, every pruner but `none` prunes, hyperband's resource is the step budget; and each
driver session's sampler seed."""

import importlib.util
import math

import optuna
import pytest

from sweeps.store import optuna_private
from sweeps.study import components, space
from tests.helpers import make_spec

pytestmark = pytest.mark.timeout(60)
optuna.logging.set_verbosity(optuna.logging.WARNING)
FINITE = {  # a space every sampler draws from, the grid sampler too (32 x 4 points)
    "batch_size": {"type": "int", "low": 16, "high": 512, "step": 16},
    "net_arch": {"type": "categorical", "choices": [[32], [64], [64, 64], [256, 256]]},
}


def drawn(spec, results, n=12) -> list[dict]:
    """The params of `n` trials of `spec`'s sampler, each told `results(k, params)` before the next ask."""
    study = optuna.create_study(direction="maximize", sampler=components.make_sampler(spec))
    params = []
    for k in range(n):
        trial = study.ask()
        params.append(space.suggest(trial, spec))
        optuna_private.tell(study, trial, results(k, params[-1]))
    return params


@pytest.mark.parametrize("name", sorted(components.SAMPLERS))
def test_a_sampler_marked_blind_draws_the_same_trials_whatever_the_results_and_no_other_does(name):
    """What the driver's ask-ahead relies on (`Component.blind`); the same seed, the same trials."""
    component = components.SAMPLERS[name]
    if missing := [package for package in component.needs if importlib.util.find_spec(package) is None]:
        pytest.skip(f"the {name} sampler needs {', '.join(missing)}, an optional package not installed here")
    spec = make_spec(space=FINITE, sampler={"name": name, "seed": 3}, budget={"n_trials": 12})
    rising = drawn(spec, lambda k, params: float(k))
    assert drawn(spec, lambda k, params: float(k)) == rising  # reproducible
    judged = drawn(spec, lambda k, params: -float(params["batch_size"]) - 100 * k)
    assert (judged == rising) is component.blind, (rising, judged)


def pending_asks(sampler: optuna.samplers.BaseSampler, spec, told: int = 12, pending: int = 4) -> list[dict]:
    """Params of `pending` trials asked one after another without results, after `told` finished."""
    study = optuna.create_study(direction="maximize", sampler=sampler)
    for _ in range(told):
        trial = study.ask()
        study.tell(trial, -abs(math.log10(space.suggest(trial, spec)["learning_rate"]) + 3))
    asked = [study.ask() for _ in range(pending)]
    return [space.suggest(trial, spec) for trial in asked]


def test_tpe_uses_constant_liar_so_parallel_asks_spread():
    """Trials asked while others run draw as Optuna's TPE does with `constant_liar=True` (the
    running trials count as bad results), not as it does without it."""
    spec = make_spec(sampler={"name": "tpe", "seed": 3, "options": {"n_startup_trials": 5}})
    ours = pending_asks(components.make_sampler(spec), spec)
    liar, honest = (pending_asks(optuna.samplers.TPESampler(seed=3, n_startup_trials=5, constant_liar=lie), spec)
                    for lie in (True, False))
    assert ours == liar and ours != honest


def prunes_far_below(pruner: optuna.pruners.BasePruner) -> int | None:
    """The step at which a trial reporting 0 is pruned after 30 trials reported about 100 at
    every step (100, 200, ..., 1000), each judged as it reported as the driver does; None if it
    is not."""
    # a fixed name: hyperband assigns a trial's bracket by the study's name and the trial's number
    study = optuna.create_study(direction="maximize", pruner=pruner, study_name="far-below")
    for k in range(30):
        trial = study.ask()
        for step in range(100, 1001, 100):
            trial.report(100.0 + k % 3, step)
            if trial.should_prune():
                break
        study.tell(trial, 100.0 + k % 3)
    bad = study.ask()
    for step in range(100, 1001, 100):
        bad.report(0.0, step)
        if bad.should_prune():
            return step
    return None


@pytest.mark.parametrize("name", sorted(components.PRUNERS))
def test_every_pruner_but_none_prunes_a_trial_far_below_the_others_at_its_first_report(name):
    options = {"percentile": {"percentile": 50.0}}.get(name, {})  # the one a study must set
    pruned_at = prunes_far_below(components.make_pruner(make_spec(pruner={"name": name, "options": options})))
    assert pruned_at == (None if name == "none" else 100)


def parallel_prunes(pruner: optuna.pruners.BasePruner) -> list[int | None]:
    """20 trials running together, each reporting at steps 1, 3, 9, ... 729, 1000 in turn: the
    step each one was pruned at (None: not pruned)."""
    study = optuna.create_study(direction="maximize", pruner=pruner, study_name="parallel")
    trials, pruned_at = [study.ask() for _ in range(20)], {}
    for step in [1, 3, 9, 27, 81, 243, 729, 1000]:
        for trial in (t for t in trials if t.number not in pruned_at):
            trial.report(float(trial.number % 7) + step / 1000, step)
            if trial.should_prune():
                pruned_at[trial.number] = step
    return [pruned_at.get(trial.number) for trial in trials]


def test_hyperband_resource_is_the_step_budget():
    """It prunes as Optuna's does with `max_resource` = total_timesteps (1000), from the first
    reports on; with "auto" it would wait for a trial to complete."""
    ours = parallel_prunes(components.make_pruner(make_spec(pruner={"name": "hyperband"})))
    assert ours == parallel_prunes(optuna.pruners.HyperbandPruner(max_resource=1000))
    assert ours != parallel_prunes(optuna.pruners.HyperbandPruner())


class RacingStudy:
    """A study where another driver registers its session the moment this one writes its own."""

    def __init__(self, study):
        self.study = study

    def __getattr__(self, name):
        return getattr(self.study, name)

    def set_user_attr(self, key, value):
        self.study.set_user_attr(key, value)
        if "index" in value and "seed" not in value:
            self.study.set_user_attr(f"{components.SESSION_ATTR}other", {"index": 0})


def test_session_seeds_the_first_exact_later_and_racing_ones_different():
    study = optuna.create_study()
    seeds = [components.session_seed(study, 3) for _ in range(3)]
    assert seeds[0] == 3 and len(set(seeds)) == 3
    again = optuna.create_study()
    assert [components.session_seed(again, 3) for _ in range(3)] == seeds  # reproducible
    # Started with another session on a fresh study, neither may take the plain seed.
    assert components.session_seed(RacingStudy(optuna.create_study()), 3) != 3
    assert components.session_seed(optuna.create_study(), None) is None
