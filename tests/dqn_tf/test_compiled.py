"""The compiled loop: chosen where it exists, refused with a clear error where it does not, its
random streams, and that it learns. (Member-k-equals-solo, resume and the tiny runs are shared
with the Python loop: see test_population.py and test_training.py, parametrised over `loop`.)"""

import numpy as np
import pytest
import tensorflow as tf

from dqn_tf import ConfigError, train
from dqn_tf.compiled_program import program_for
from dqn_tf.config import COMPILED_ENV_IDS, TrainConfig, parse_config
from dqn_tf.counter_rng import ACT, RESET, uniform
from dqn_tf.graph_envs import graph_env
from dqn_tf.strategy import plan_devices
from dqn_tf.training import compiled_loop_applies
from tests.fakes import nan_env

TINY = {
    "total_timesteps": 1000, "net_arch": [32], "learning_starts": 200, "train_freq": 4,
    "gradient_steps": 2, "eval_freq": 500, "n_eval_episodes": 3, "buffer_size": 1000, "batch_size": 32,
}


def test_auto_takes_the_compiled_loop_where_an_in_graph_env_exists():
    assert train({**TINY, "env_id": "MountainCar-v0"}).loop == "compiled"
    assert train({**TINY, "loop": "python"}).loop == "python"
    assert train({**TINY, "precision": "mixed_bfloat16"}).loop == "python"  # the compiled loop is float32
    assert train({**TINY, "env_id": nan_env.register(), "total_timesteps": 300,
                  "learning_starts": 400}).loop == "python"  # never trains on NaN rewards


def test_auto_takes_the_compiled_loop_for_minatar_games_with_an_in_graph_version():
    plan = plan_devices("cpu")
    assert compiled_loop_applies(parse_config({"env_id": "MinAtar/Breakout-v1"}), plan)
    assert not compiled_loop_applies(parse_config({"env_id": "MinAtar/Breakout-v1", "loop": "python"}), plan)


def test_compiled_on_an_env_without_an_in_graph_version_is_refused_naming_the_field():
    env_id = nan_env.register()
    with pytest.raises(ConfigError, match=f"loop = 'compiled': env_id = '{env_id}' has no in-graph version"):
        TrainConfig.from_dict({**TINY, "env_id": env_id, "loop": "compiled"}).check_consistency()
    assert [env_id for env_id in COMPILED_ENV_IDS if graph_env(env_id)] == list(COMPILED_ENV_IDS)


def test_random_streams_are_uniform_and_differ_by_member_stream_and_step():
    keys = tf.constant([1, 2], tf.uint32)
    draws = uniform(keys, ACT, [tf.constant(7, tf.int64)], [20_000]).numpy()
    assert draws.min() >= 0 and draws.max() < 1
    np.testing.assert_allclose(draws.mean(axis=1), 0.5, atol=0.01)
    np.testing.assert_allclose(draws.var(axis=1), 1 / 12, atol=0.003)
    assert abs(np.corrcoef(draws[0], draws[1])[0, 1]) < 0.03  # members draw independently
    again = uniform(keys, ACT, [tf.constant(7, tf.int64)], [20_000]).numpy()
    np.testing.assert_array_equal(draws, again)
    for other in (uniform(keys, RESET, [tf.constant(7, tf.int64)], [20_000]),
                  uniform(keys, ACT, [tf.constant(8, tf.int64)], [20_000])):
        assert abs(np.corrcoef(draws[0], other.numpy()[0])[0, 1]) < 0.03


@pytest.mark.slow
def test_compiled_loop_solves_cartpole_within_50k_steps():
    """rl-zoo's tuned CartPole-v1 settings (the defaults) on the compiled loop reach >= 475."""
    result = train({"seed": 0, "loop": "compiled"})
    curve = [e["mean_return"] for e in result.evals]
    assert result.env_steps == 50_000 and result.loop == "compiled"
    assert max(curve) >= 475, curve
    assert max(curve) > 2 * curve[0]  # it learned, not a lucky initialisation


def test_a_second_run_of_the_same_shape_reuses_the_program_and_gets_the_same_results():
    """A warm trial process compiles once per shape; a reused program starts each run afresh."""
    config = {**TINY, "net_arch": [24]}  # a shape no other test compiled
    first, other, again = train({**config, "seed": 1}), train({**config, "seed": 2}), train({**config, "seed": 1})
    assert again.evals == first.evals and again.episodes == first.episodes
    assert other.episodes != first.episodes
    assert again.timings["build_seconds"] < first.timings["build_seconds"] / 5


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Acrobot-v1"])
def test_one_env_alone_steps_as_it_does_beside_other_members(env_id):
    # XLA folds constants differently in one-element arrays (CartPole's `0.1 * cos**2 / 1.1`
    # becomes `cos**2 * 0.0909...`): a solo run of one env parted in the last bit from the same
    # seed as a population member, and RL amplified that into another run. Random actions here
    # (before learning_starts): only the env's arithmetic is compared, bit for bit, every 100 steps.
    config = {**TINY, "env_id": env_id, "learning_starts": 10_000, "total_timesteps": 10_000}
    configs = [parse_config({**config, "seed": seed}) for seed in (7, 8, 9)]
    env = graph_env(env_id)

    def states(members):  # each member's first env, every 100 steps (one cached program per shape: in turn)
        program, seen = program_for(members, env, "/cpu:0"), []
        for steps in range(100, 1001, 100):
            program.advance(steps)
            seen.append(program.state.numpy()[:, 0])
        return np.stack(seen, axis=1)

    together = states(configs)
    for k, member in enumerate(configs):
        np.testing.assert_array_equal(states([member])[0], together[k])


@pytest.mark.parametrize("max_grad_norm", [10.0, 1e-3])  # clipping off, and on at every step
def test_a_solo_gradient_step_is_the_same_members_step_in_a_population(max_grad_norm):
    # Autodiff sums a stacked bias's gradient over the batch with a reduction, which XLA's CPU
    # code sums in another order for one member than for three (64 rows of 256 units).
    config = {**TINY, "net_arch": [256, 256], "batch_size": 64, "learning_starts": 100, "train_freq": 64,
              "gradient_steps": 1, "total_timesteps": 10_000, "max_grad_norm": max_grad_norm}
    configs = [parse_config({**config, "seed": seed}) for seed in (7, 8, 9)]
    env = graph_env("CartPole-v1")

    def weights(members):  # every weight and Adam moment of each member after 3 gradient steps
        program = program_for(members, env, "/cpu:0")
        program.advance(300)
        return [variable.numpy() for variable in (*program.online, *program.adam_m, *program.adam_v)]

    together = weights(configs)
    for k, member in enumerate(configs):
        for alone, stacked in zip(weights([member]), together, strict=True):
            np.testing.assert_array_equal(alone[0], stacked[k])
