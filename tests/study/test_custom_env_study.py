"""A study on the user's own env: `env_packages` next to `env_id`, `env_kwargs` and `env_wrappers`
in the trainer, `env_kwargs.KEYWORD` in the space; every problem found when the study is read."""

from pathlib import Path

import optuna
import pytest

from dqn_tf.config import parse_config
from sweeps.driver.packing import Mates
from sweeps.reporting.best import best_config
from sweeps.store.reader import trials_frame
from sweeps.study.loading import parse_spec
from sweeps.study.space import seed_configs, suggest
from sweeps.study.spec import SpecError

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "custom_env"
optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture(autouse=True)
def example_on_path(monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLE))


def corridor_study(**changes):
    data = {
        "study": "corridor", "env_id": "Corridor-v0", "env_packages": ["corridor_env"],
        "trainer": {"env_kwargs": {"length": 6, "max_steps": 30},
                    "env_wrappers": [{"corridor_env.wrappers:ScaleReward": {"scale": 2.0}}]},
        "space": {"env_kwargs.max_steps": {"type": "categorical", "choices": [10, 20]},
                  "learning_rate": {"type": "float", "low": 1e-4, "high": 1e-3, "log": True}},
        "sampler": {"name": "random", "seed": 0},
    }
    data.update(changes)
    return parse_spec(data, source="corridor.yaml")


def test_a_searched_env_keyword_lands_in_the_params_the_configs_and_best():
    spec = corridor_study()
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=1))
    trial = study.ask()
    params = suggest(trial, spec)
    configs = seed_configs(spec, params)
    assert configs[0]["env_kwargs"] == {"length": 6, "max_steps": params["env_kwargs.max_steps"]}  # length kept
    assert configs[0]["env_packages"] == ["corridor_env"]
    assert parse_config(configs[0]).env_wrappers == ({"corridor_env.wrappers:ScaleReward": {"scale": 2.0}},)
    study.tell(trial, 1.0)
    table = trials_frame(study)
    assert table["params_env_kwargs.max_steps"].tolist() == [params["env_kwargs.max_steps"]]
    best = best_config(table, spec)["config"]
    assert best["env_kwargs"] == configs[0]["env_kwargs"] and best["env_packages"] == ["corridor_env"]


def test_packed_mates_share_the_searched_env_keyword(tmp_path):
    """Members of one task share their envs' settings: a mate is asked with the keyword fixed."""
    spec = corridor_study(pack=2)
    assert Mates(optuna.create_study(), spec, tmp_path).fixed == ["env_kwargs.max_steps"]


@pytest.mark.parametrize("changes, fragments", [
    ({"env_packages": ["no_such_pkg"]}, ["corridor.yaml: trainer: env_packages = ['no_such_pkg']", "cannot import"]),
    ({"space": {"env_kwargs.max_stepz": {"type": "categorical", "choices": [10]}}},
     ["corridor.yaml: space: with env_kwargs.max_stepz=10", "env_kwargs.max_stepz: not a keyword of Corridor-v0",
      "accepted: length, max_steps, step_cost, max_episode_steps"]),
    ({"space": {"net_arch.units": {"type": "categorical", "choices": [10]}}},
     ["space.net_arch.units", "only env_kwargs.KEYWORD"]),
    ({"trainer": {"env_kwargs": {"width": 3}}}, ["corridor.yaml: trainer: env_kwargs.width: not a keyword"]),
    ({"trainer": {"env_wrappers": ["corridor_env.wrappers:Scale"]}}, ["trainer: env_wrappers[0]", "no attribute 'Scale'"]),
])
def test_bad_env_settings_are_refused_naming_file_and_field(changes, fragments):
    with pytest.raises(SpecError) as error:
        corridor_study(**changes)
    for fragment in fragments:
        assert fragment in str(error.value)
