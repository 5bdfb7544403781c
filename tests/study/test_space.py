"""The search space: what a trial suggests stays in the space (list-valued choices decoded), a
trial's params become one trainer config per seed, and the grid sampler covers the grid."""

import optuna
import pytest

from sweeps.store import optuna_private
from sweeps.study import components, space
from tests.helpers import make_spec

pytestmark = pytest.mark.timeout(60)
SPACE = {
    "learning_rate": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
    "batch_size": {"type": "int", "low": 16, "high": 256, "step": 16},
    "net_arch": {"type": "categorical", "choices": [[32], [64, 64]]},
    "double_dqn": {"type": "categorical", "choices": [True, False]},
}


def test_suggest_stays_in_the_space_and_decodes_lists():
    spec = make_spec(space=SPACE, seeds=2)
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

    spec = make_spec(space=SPACE, seeds=2)
    configs = space.seed_configs(spec, {"learning_rate": 1e-3, "net_arch": [32]})
    assert [c["seed"] for c in configs] == [0, 1]
    assert all(parse_config(c).learning_rate == 1e-3 for c in configs)


def test_grid_sampler_covers_the_grid():
    spec = make_spec(
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
