"""The user's own env in the trainer: `module:EnvId`, `env_packages`, `env_kwargs`, `env_wrappers`,
which loop trains it, an env that breaks, and resuming one whose state cannot be captured.

The example package (examples/custom_env/corridor_env) is put on sys.path here as a user's
PYTHONPATH would; `tests.custom_envs` holds envs that break or have Dict observations.
"""

import subprocess
import sys
from pathlib import Path

import pytest

from dqn_tf import ConfigError, train
from dqn_tf.config import parse_config
from dqn_tf.env_source import EnvError, graph_differences
from dqn_tf.envs import check_env

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "custom_env"
CORRIDOR = "corridor_env:Corridor-v0"
TINY = {
    "total_timesteps": 1000, "net_arch": [32], "learning_starts": 200, "train_freq": 4, "gradient_steps": 2,
    "eval_freq": 500, "n_eval_episodes": 3, "buffer_size": 1000, "batch_size": 32,
}


@pytest.fixture(autouse=True)
def example_on_path(monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLE))


def test_module_env_id_and_env_packages_make_the_env_with_its_kwargs():
    assert check_env(parse_config({"env_id": CORRIDOR})) == ((8,), 2)
    config = parse_config({"env_id": "Corridor-v0", "env_packages": ["corridor_env"], "env_kwargs": {"length": 5}})
    assert check_env(config) == ((5,), 2)
    assert parse_config(config.to_dict()) == config  # plain data round trip (checkpoints, best.yaml)


def test_dict_observations_are_flattened_and_wrappers_are_checked_like_envs():
    assert check_env(parse_config({"env_id": "tests.custom_envs:DictObs-v0"})) == ((5,), 2)  # 2 + one-hot of 3
    stack = {"gymnasium.wrappers:FrameStackObservation": {"stack_size": 2}}  # [2, 8] observations
    with pytest.raises(ConfigError, match="needs a flat Box .* env_wrappers: \\['gymnasium.wrappers:FlattenObservation'\\]"):
        parse_config({"env_id": CORRIDOR, "env_wrappers": [stack]})
    flattened = parse_config({"env_id": CORRIDOR, "env_wrappers": [stack, "gymnasium.wrappers:FlattenObservation"]})
    assert check_env(flattened) == ((16,), 2)


@pytest.mark.parametrize("values, fragments", [
    ({"env_id": "no_such_pkg:Corridor-v0"}, ["env_id = 'no_such_pkg:Corridor-v0'", "cannot import 'no_such_pkg'", "--upload"]),
    ({"env_id": "Corridor-v0", "env_packages": ["no_such_pkg"]}, ["env_packages = ['no_such_pkg']", "No module named"]),
    ({"env_id": "Corridorr-v0", "env_packages": ["corridor_env"]},
     ["env_id = 'Corridorr-v0'", "not a registered gymnasium environment", "did you mean Corridor-v0"]),
    ({"env_id": "Pendulum-v1"}, ["env_id = 'Pendulum-v1'", "DQN needs a Discrete action space, got Box"]),
    ({"env_id": CORRIDOR, "env_wrappers": ["no_such_pkg:Wrap"]}, ["env_wrappers[0] = 'no_such_pkg:Wrap'", "cannot import"]),
    ({"env_id": CORRIDOR, "env_wrappers": ["corridor_env.wrappers:Nope"]}, ["env_wrappers[0]", "no attribute 'Nope'"]),
    ({"env_id": CORRIDOR, "env_wrappers": ["no path"]}, ["env_wrappers = ['no path']", "'module:Callable'"]),
    ({"env_id": CORRIDOR, "env_wrappers": [{"corridor_env.wrappers:ScaleReward": {"factor": 2}}]},
     ["env_wrappers[0] = 'corridor_env.wrappers:ScaleReward'", "'factor'"]),
    ({"env_id": CORRIDOR, "env_kwargs": {"max_stepz": 9}},
     ["env_kwargs.max_stepz", "did you mean 'max_steps'", "accepted: length, max_steps, step_cost, max_episode_steps"]),
    ({"env_id": CORRIDOR, "env_kwargs": {"length": 1}}, ["env_id", "cannot make the env", "length must be at least 2"]),
    ({"env_id": "ALE/Pong-v5", "env_kwargs": {"mode": 1}}, ["env_kwargs: not supported for env_id = 'ALE/Pong-v5'"]),
    ({"env_id": "tests.custom_envs:SequenceObs-v0"}, ["cannot be flattened into a vector", "env_wrappers"]),
    ({"env_id": "two:colons:Env-v0"}, ["env_id = 'two:colons:Env-v0'", "'module:EnvId'"]),
])
def test_bad_env_settings_name_the_field(values, fragments):
    with pytest.raises(ConfigError) as error:
        parse_config(values)
    for fragment in fragments:
        assert fragment in str(error.value)


def test_the_compiled_loop_trains_only_gymnasium_s_own_env():
    capped = train({**TINY, "env_kwargs": {"max_episode_steps": 25}})  # CartPole: the graph honours a time limit
    assert capped.loop == "compiled"
    assert max(e["length"] for e in capped.episodes) == 25 and max(e["max_return"] for e in capped.evals) <= 25
    clip = {"gymnasium.wrappers:ClipReward": {"min_reward": 0.0, "max_reward": 0.5}}
    wrapped = train({**TINY, "env_wrappers": [clip], "env_kwargs": {"max_episode_steps": 25}})
    assert wrapped.loop == "python"  # auto: a wrapper changes the env
    assert all(e["return"] == 0.5 * e["length"] <= 12.5 for e in wrapped.episodes)
    with pytest.raises(ConfigError, match="loop = 'compiled': env_wrappers = \\['gymnasium.wrappers:ClipReward'\\] change"):
        parse_config({"env_wrappers": [clip], "loop": "compiled"})
    with pytest.raises(ConfigError, match="loop = 'compiled': env_kwargs \\['sutton_barto_reward'\\] change the env"):
        parse_config({"env_kwargs": {"sutton_barto_reward": True}, "loop": "compiled"})


def test_user_code_that_registers_its_own_cartpole_takes_the_python_loop(tmp_path):
    """A `module:` that re-registers a built-in id changes the env: no in-graph stand-in for it.
    In a fresh interpreter: the registry is process-wide."""
    (tmp_path / "my_cartpole.py").write_text(
        "import gymnasium as gym\n"
        "gym.register('CartPole-v1', entry_point='gymnasium.envs.classic_control.cartpole:CartPoleEnv',"
        " max_episode_steps=20)\n")
    code = (
        "from dqn_tf.config import parse_config, ConfigError\n"
        "from dqn_tf.env_source import graph_differences\n"
        "print(graph_differences(parse_config({'env_id': 'CartPole-v1', 'env_packages': ['json']})))\n"
        "print(graph_differences(parse_config({'env_id': 'my_cartpole:CartPole-v1'})))\n"
        "try:\n    parse_config({'env_id': 'my_cartpole:CartPole-v1', 'loop': 'compiled'})\n"
        "except ConfigError as error:\n    print(error)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          check=False, env={"PYTHONPATH": f"{tmp_path}:{ROOT}", "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr[-2000:]
    unchanged, changed, refused = done.stdout.strip().splitlines()
    assert unchanged == "[]"  # a module that registers nothing of the kind leaves the compiled loop
    assert changed == "[\"env_id = 'my_cartpole:CartPole-v1': user code registered its own CartPole-v1\"]"
    assert refused.startswith("loop = 'compiled': env_id = 'my_cartpole:CartPole-v1': user code registered")
    assert graph_differences(parse_config({"env_id": "CartPole-v1"})) == []


def test_a_reward_wrapper_scales_training_and_evaluation_returns():
    """Wrappers apply to the training envs and to the evaluation envs. With no training (random
    actions, the initial network), the scaled run sees the same episodes at three times the reward."""
    base = {**TINY, "env_id": CORRIDOR, "learning_starts": 5000, "env_kwargs": {"max_steps": 6, "length": 3}}
    plain = train(base)
    assert plain.resumed_exactly is None  # not resumed at all
    scaled = train({**base, "env_wrappers": [{"corridor_env.wrappers:ScaleReward": {"scale": 3.0}}]})
    assert [e["length"] for e in scaled.episodes] == [e["length"] for e in plain.episodes]
    assert max(e["length"] for e in plain.episodes) == 6  # env_kwargs reach the env
    assert len({e["return"] for e in plain.episodes}) > 1  # some episodes reach the end, some do not
    assert [e["return"] for e in scaled.episodes] == pytest.approx([3 * e["return"] for e in plain.episodes])
    assert [e["mean_return"] for e in scaled.evals] == pytest.approx([3 * e["mean_return"] for e in plain.evals])


@pytest.mark.parametrize("fault, error, message", [
    ("raise", RuntimeError, "Faulty broke at env step 300"),
    ("nan", EnvError, "env 'tests.custom_envs:Faulty-v0': step 20 of an episode returned a non-finite observation"),
    ("shape", EnvError, "returned an observation of shape \\(4,\\); its observation_space has shape \\(3,\\)"),
])
def test_an_env_that_breaks_fails_the_run_with_its_own_message(fault, error, message):
    config = {**TINY, "env_id": "tests.custom_envs:Faulty-v0", "env_kwargs": {"fault": fault, "fail_at": 300}}
    with pytest.raises(error, match=message):
        train(config)


class Crash(Exception):
    """Stands in for a worker that dies mid-run."""


def crash_after(step: int):
    def on_event(event):
        if event["event"] == "progress" and event["step"] > step:
            raise Crash
    return on_event


@pytest.mark.parametrize("env, exactly", [({"env_id": CORRIDOR}, False), ({"loop": "python"}, True)],
                         ids=["corridor", "cartpole"])
def test_resuming_an_env_whose_state_cannot_be_captured_says_so(tmp_path, env, exactly):
    config = {**TINY, **env}
    with pytest.raises(Crash):
        train(config, on_event=crash_after(config["eval_freq"]), checkpoint_dir=tmp_path)
    resumed = train(config, checkpoint_dir=tmp_path)
    assert resumed.resumed_from_step == config["eval_freq"] and resumed.env_steps == config["total_timesteps"]
    assert resumed.resumed_exactly is exactly
