"""Gymnasium 1.x next-step autoreset: what the collector stores at episode boundaries."""

import gymnasium as gym
import numpy as np

from dqn_tf.envs import Collector, make_vector_env
from dqn_tf.replay import ReplayBuffer


def collect(collector: Collector, actions_fn, steps: int):
    stored = []
    for t in range(steps):
        obs, _actions, _rewards, next_obs, terminated, valid = collector.step(actions_fn(t), np.array([t]))
        stored.append((obs.copy(), next_obs.copy(), terminated.copy(), valid.copy()))
    return stored


def test_native_vector_env_is_used_where_available():
    assert type(make_vector_env("CartPole-v1", 2)).__name__ == "CartPoleVectorEnv"
    assert isinstance(make_vector_env("Acrobot-v1", 2), gym.vector.SyncVectorEnv)


def test_terminal_transition_stored_and_reset_step_skipped():
    collector = Collector(make_vector_env("CartPole-v1", 1), [3])
    stored = collect(collector, lambda t: np.zeros(1, dtype=np.int64), 40)  # always push left: falls
    ends = [t for t, (_, _, term, valid) in enumerate(stored) if term[0] and valid[0]]
    assert ends, "the pole should fall within 40 steps"
    end = ends[0]
    final_obs = stored[end][1][0]
    assert abs(final_obs[2]) > 0.2095 or abs(final_obs[0]) > 2.4  # the true terminal state
    assert not stored[end + 1][3][0]  # the autoreset step is not a real transition
    assert np.all(np.abs(stored[end + 1][1][0]) <= 0.05)  # it produced a fresh reset state
    assert stored[end + 2][3][0]  # and the next one is real again, starting from the reset state
    np.testing.assert_array_equal(stored[end + 2][0][0], stored[end + 1][1][0])
    assert collector.tracker.episodes[0][0]["length"] == end + 1


def test_truncated_transition_keeps_true_final_obs_and_is_not_terminal():
    env = gym.make_vec("CartPole-v1", num_envs=1, vectorization_mode="vector_entry_point", max_episode_steps=5)
    collector = Collector(env, [7])
    alternate = lambda t: np.array([t % 2], dtype=np.int64)  # balances: only the time limit ends it
    buffer = ReplayBuffer(100, 4)
    for t in range(12):
        obs, actions, rewards, next_obs, terminated, valid = collector.step(alternate(t), np.array([t]))
        buffer.add(valid[None], obs[None], actions[None], rewards[None], next_obs[None], terminated[None])
    assert buffer.size[0] == 10  # 12 vector steps, 2 of them autoreset steps
    assert buffer.dones[0, :10].sum() == 0  # time limits are not terminal: targets bootstrap

    reference = gym.make("CartPole-v1", max_episode_steps=5)
    ref_obs, _ = reference.reset(seed=7)
    for t in range(5):
        ref_obs, *_ = reference.step(t % 2)
    np.testing.assert_allclose(buffer.next_obs[0, 4], ref_obs, rtol=1e-6)  # true final observation
    assert not np.allclose(buffer.next_obs[0, 4], buffer.obs[0, 5])  # no transition spans the reset
    assert [e["length"] for e in collector.tracker.episodes[0]] == [5, 5]
