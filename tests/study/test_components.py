"""Search space, samplers, pruners, objective metrics and seed aggregation."""

import optuna
import pytest

from sweeps.store import optuna_private
from sweeps.study import components, objective, space
from sweeps.study.loading import parse_spec

pytestmark = pytest.mark.timeout(60)


def spec_with(**changes):
    data = {
        "study": "t",
        "env_id": "CartPole-v1",
        "trainer": {"total_timesteps": 1000, "eval_freq": 100},
        "space": {
            "learning_rate": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
            "batch_size": {"type": "int", "low": 16, "high": 256, "step": 16},
            "net_arch": {"type": "categorical", "choices": [[32], [64, 64]]},
            "double_dqn": {"type": "categorical", "choices": [True, False]},
        },
        "seeds": 2,
    }
    data.update(changes)
    return parse_spec(data)


def test_suggest_stays_in_the_space_and_decodes_lists():
    spec = spec_with()
    study = optuna.create_study(direction="maximize", sampler=components.make_sampler(spec))
    for _ in range(20):
        trial = study.ask()
        params = space.suggest(trial, spec)
        assert 1e-4 <= params["learning_rate"] <= 1e-2
        assert params["batch_size"] % 16 == 0 and 16 <= params["batch_size"] <= 256
        assert params["net_arch"] in ([32], [64, 64])
        assert trial.params["net_arch"] in ("[32]", "[64, 64]")  # stored as JSON strings
        assert space.params_to_config(trial.params, spec) == params
        study.tell(trial, 1.0)


def test_seed_configs_are_valid_trainer_configs_one_per_seed():
    from dqn_tf.config import parse_config

    spec = spec_with()
    configs = space.seed_configs(spec, {"learning_rate": 1e-3, "net_arch": [32]})
    assert [c["seed"] for c in configs] == [0, 1]
    assert all(parse_config(c).learning_rate == 1e-3 for c in configs)


@pytest.mark.parametrize(
    "name, cls", [("tpe", "TPESampler"), ("random", "RandomSampler"), ("cmaes", "CmaEsSampler"), ("qmc", "QMCSampler")]
)
def test_samplers(name, cls):
    pytest.importorskip({"cmaes": "cmaes", "qmc": "scipy"}.get(name, "optuna"))
    sampler = components.make_sampler(spec_with(sampler={"name": name, "seed": 3}))
    assert type(sampler).__name__ == cls


def test_tpe_uses_constant_liar_so_parallel_asks_spread():
    sampler = components.make_sampler(spec_with())
    assert sampler._constant_liar is True


def test_grid_sampler_covers_the_grid():
    spec = spec_with(
        sampler={"name": "grid"},
        space={"batch_size": {"type": "int", "low": 32, "high": 64, "step": 32},
               "net_arch": {"type": "categorical", "choices": [[32], [64, 64]]}},
    )
    study = optuna.create_study(sampler=components.make_sampler(spec))
    seen = set()
    for _ in range(4):
        trial = study.ask()
        params = space.suggest(trial, spec)
        seen.add((params["batch_size"], tuple(params["net_arch"])))
        optuna_private.tell(study, trial, 0.0)
    assert len(seen) == 4


@pytest.mark.parametrize(
    "name, options, cls",
    [
        ("median", {}, "MedianPruner"),
        ("percentile", {"percentile": 25.0}, "PercentilePruner"),
        ("successive_halving", {}, "SuccessiveHalvingPruner"),
        ("hyperband", {}, "HyperbandPruner"),
        ("none", {}, "NopPruner"),
    ],
)
def test_pruners(name, options, cls):
    pruner = components.make_pruner(spec_with(pruner={"name": name, "options": options}))
    assert type(pruner).__name__ == cls


def test_hyperband_resource_is_the_step_budget():
    pruner = components.make_pruner(spec_with(pruner={"name": "hyperband"}))
    assert pruner._max_resource == 1000


EVALS = [{"step": 100, "mean_return": 10.0}, {"step": 200, "mean_return": 500.0},
         {"step": 300, "mean_return": 80.0}, {"step": 400, "mean_return": 100.0}]


def test_curve_metrics():
    assert objective.curve_metric(EVALS, "final", 3) == 100.0
    assert objective.curve_metric(EVALS, "last_k", 2) == 90.0
    assert objective.curve_metric(EVALS, "last_k", 10) == pytest.approx(172.5)
    # trapezoid area / length: (255 + 290 + 90) * 100 / 300
    assert objective.curve_metric(EVALS, "auc", 3) == pytest.approx(635 / 3)
    assert objective.curve_metric(EVALS[:1], "auc", 3) == 10.0
    with pytest.raises(ValueError, match="no evaluations"):
        objective.curve_metric([], "final", 1)


def test_aggregation_mean_and_interquartile_mean():
    assert objective.aggregate([1, 2, 3, 100], "mean") == 26.5
    assert objective.aggregate([1, 2, 3, 100], "iqm") == 2.5  # drops the lowest and the highest quarter
    assert objective.aggregate([4, 1, 3, 2, 1000, -1000, 0, 5], "iqm") == pytest.approx(2.5)
    assert objective.aggregate([7.0], "iqm") == 7.0
    assert objective.aggregate([1.0, 3.0], "iqm") == 2.0


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
