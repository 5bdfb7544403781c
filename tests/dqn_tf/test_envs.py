"""Same-step autoreset: what the collector stores at episode boundaries, and env snapshots."""

import gymnasium as gym
import numpy as np
import pytest

from dqn_tf import env_state
from dqn_tf.envs import Collector, SameStepCartPole, make_vector_env


def test_native_vector_env_is_used_where_available():
    assert isinstance(make_vector_env("CartPole-v1", 2), SameStepCartPole)
    assert isinstance(make_vector_env("Acrobot-v1", 2), gym.vector.SyncVectorEnv)


def test_same_step_cartpole_is_gymnasiums_cartpole_step_for_step():
    """Same dynamics, termination, truncation and reset draws as `gym.make("CartPole-v1")`."""
    vector = SameStepCartPole(num_envs=1, max_episode_steps=60)
    single = gym.make("CartPole-v1", max_episode_steps=60)
    obs, _ = vector.reset(seed=5)
    expected, _ = single.reset(seed=5)
    rng, ends = np.random.default_rng(0), {"terminated": 0, "truncated": 0}
    for _ in range(3000):
        balance = obs[0, 2] + 0.5 * obs[0, 3] > 0
        action = int(balance if rng.random() < 0.7 else not balance)  # balances often, not always
        obs, reward, terminated, truncated, info = vector.step(np.array([action]))
        expected, expected_reward, expected_term, expected_trunc, _ = single.step(action)
        assert (reward[0], terminated[0], truncated[0]) == (expected_reward, expected_term, expected_trunc)
        if terminated[0] or truncated[0]:
            ends["terminated" if terminated[0] else "truncated"] += 1
            np.testing.assert_array_equal(info["final_obs"][0], expected)  # the true final observation
            expected, _ = single.reset()
        np.testing.assert_array_equal(obs[0], expected)
    assert ends["terminated"] > 0 and ends["truncated"] > 0


def test_terminal_and_truncated_transitions_keep_their_true_final_observation():
    collector = Collector("CartPole-v1", 1, [3])
    stored = []
    for t in range(600):
        before = collector.obs.copy()
        obs, _, next_obs, terminated = collector.step(np.zeros((1, 1), dtype=np.int64), t + 1)
        np.testing.assert_array_equal(obs, before)
        stored.append((next_obs.copy(), terminated.copy(), collector.obs.copy()))
    ends = [t for t, (_, term, _) in enumerate(stored) if term[0, 0]]
    assert ends, "always pushing left, the pole falls"
    final_obs, _, reset_obs = stored[ends[0]]
    assert abs(final_obs[0, 0, 2]) > 0.2095 or abs(final_obs[0, 0, 0]) > 2.4  # the true terminal state
    assert np.all(np.abs(reset_obs) <= 0.05)  # the next obs already starts a new episode
    episodes = collector.episodes[0]
    assert episodes[0]["length"] == ends[0] + 1 and episodes[0]["step"] == ends[0] + 1
    assert sum(e["length"] for e in episodes) == ends[-1] + 1  # every step is a real transition

    truncating = Collector("Acrobot-v1", 1, [7])  # an untrained Acrobot episode hits the 500-step limit
    for t in range(500):
        _, _, next_obs, terminated = truncating.step(np.ones((1, 1), dtype=np.int64), t + 1)
    assert not terminated.any() and truncating.episodes[0][0]["length"] == 500
    assert not np.allclose(next_obs, truncating.obs)  # bootstraps from the final state, not the reset one


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Acrobot-v1", "MountainCar-v0"])
def test_env_snapshot_restores_the_exact_future(env_id):
    """capture -> JSON -> restore into a fresh env: the same observations, rewards and resets."""
    import json

    rng = np.random.default_rng(1)
    actions = rng.integers(0, 2, size=(700, 3))
    env = make_vector_env(env_id, 3)
    env.reset(seed=11)
    for a in actions[:250]:
        env.step(a)
    saved = json.loads(json.dumps(env_state.capture(env)))
    copy = make_vector_env(env_id, 3)
    copy.reset(seed=99)  # another seed: everything that matters must come from the snapshot
    env_state.restore(copy, saved)
    for a in actions[250:]:
        for x, y in zip(env.step(a)[:4], copy.step(a)[:4]):
            np.testing.assert_array_equal(x, y)


def test_collector_drops_stopped_members():
    collector = Collector("CartPole-v1", 2, [1, 2, 3])
    collector.keep([0, 2])
    assert collector.members == [0, 2] and len(collector.envs) == 2 and collector.obs.shape == (2, 2, 4)
    for t in range(100):
        collector.step(np.zeros((2, 2), dtype=np.int64), 2 * (t + 1))
    assert collector.episodes[1] == [] and collector.episodes[0] and collector.episodes[2]
