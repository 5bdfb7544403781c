"""The in-graph envs against gymnasium 1.4, the reference: dynamics from the same states, both
kinds of episode end, the reset distribution, episode-length statistics, and XLA compilation."""

from __future__ import annotations

import functools
from collections.abc import Callable

import gymnasium as gym
import numpy as np
import pytest
import tensorflow as tf

from dqn_tf.graph_envs import GraphEnv, graph_env

ENV_IDS = ("CartPole-v1", "Acrobot-v1", "MountainCar-v0")
PI = np.pi
Policy = Callable[[np.ndarray, np.random.Generator | None], np.ndarray]  # obs [B, obs] -> [B]


def edge_states(env_id: str, rng: np.random.Generator) -> np.ndarray:
    """Random states over (and just past) the region an episode visits, plus hand-placed edges."""
    if env_id == "CartPole-v1":
        threshold = 12 * 2 * PI / 360
        box = rng.uniform([-2.45, -2, -0.215, -3], [2.45, 2, 0.215, 3], (600, 4))
        # exactly on a threshold (not terminated) and one float past it (terminated)
        edges = [[x, 0, 0, 0] for x in (2.4, -2.4, np.nextafter(2.4, 3), np.nextafter(-2.4, -3))]
        edges += [[0, 0, th, 0] for th in (threshold, -threshold, np.nextafter(threshold, 1),
                                           np.nextafter(-threshold, -1))]
        return np.concatenate([box, edges])
    if env_id == "Acrobot-v1":
        box = rng.uniform([-PI, -PI, -4 * PI, -9 * PI], [PI, PI, 4 * PI, 9 * PI], (400, 4))
        # at the velocity bounds one rk4 step moves an angle by several turns (several wraps)
        fast = np.c_[rng.uniform(-PI, PI, (100, 2)), rng.choice([-1, 1], (100, 2)) * [4 * PI, 9 * PI]]
        # near the goal height, so about half the steps terminate
        near = np.c_[rng.uniform(PI - 1.2, PI + 1.2, 200), rng.uniform(-1, 1, 200),
                     rng.uniform(-2, 2, (200, 2))]
        near[:, 0] = (near[:, 0] + PI) % (2 * PI) - PI
        return np.concatenate([box, fast, near])
    box = rng.uniform([-1.2, -0.07], [0.6, 0.07], (400, 2))
    wall = np.c_[rng.uniform(-1.2, -1.13, 100), rng.uniform(-0.07, 0, 100)]  # pushed into the wall
    goal = np.c_[rng.uniform(0.43, 0.5, 100), rng.uniform(-0.01, 0.07, 100)]
    edges = [[-1.2, -0.07], [-1.2, 0.0], [0.6, 0.07], [0.5, 0.0], [0.6, -0.07]]
    return np.concatenate([box, wall, goal, edges])


def set_state(env: gym.Env, state: np.ndarray) -> None:
    """Put gymnasium's unwrapped env in `state`, as if it had just been reset there."""
    env.state = np.array(state, dtype=np.float64)
    if hasattr(env, "steps_beyond_terminated"):  # CartPole: a fresh episode, not a post-end step
        env.steps_beyond_terminated = None


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_one_step_from_any_state_is_gymnasiums(env_id):
    """Same next state (1e-9), observation (float32 rounding), reward and terminated flag as
    gymnasium's unwrapped env put in the same state, over the edges that decide an episode."""
    env, genv = gym.make(env_id).unwrapped, graph_env(env_id)
    env.reset(seed=0)
    rng = np.random.default_rng(1)
    states = edge_states(env_id, rng)
    actions = rng.integers(0, genv.n_actions, len(states))
    rows = []
    for state, action in zip(states, actions, strict=True):
        set_state(env, state)
        obs, reward, terminated, truncated, _ = env.step(int(action))
        assert not truncated
        rows.append((np.array(env.state, np.float64), obs, np.float32(reward), terminated))
    want_state, want_obs, want_reward, want_terminated = (np.array(column) for column in zip(*rows))
    next_state, reward, terminated = genv.step(tf.constant(states), tf.constant(actions, tf.int32))
    obs = genv.observe(next_state)
    assert (next_state.dtype, obs.dtype, reward.dtype, terminated.dtype) == (
        tf.float64, tf.float32, tf.float32, tf.bool)
    np.testing.assert_allclose(next_state, want_state, rtol=0, atol=1e-9)
    np.testing.assert_allclose(obs, want_obs, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(reward, want_reward)
    np.testing.assert_array_equal(terminated, want_terminated)
    assert 0 < want_terminated.mean() < 1  # both outcomes were exercised


@functools.cache
def compiled_step(env_id: str) -> Callable:
    """One XLA-compiled env step with its observation, traced once per env and batch shape."""
    genv = graph_env(env_id)

    def step(state, action):
        next_state, _, terminated = genv.step(state, action)
        return next_state, genv.observe(next_state), terminated
    return tf.function(step, jit_compile=True)


def graph_episodes(genv: GraphEnv, uniforms: np.ndarray, policy: Policy,
                   rng: np.random.Generator | None) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """Runs one episode per row of `uniforms` (its reset draws) to its end, as the compiled loop
    will: XLA-compiled steps, terminated by the env or truncated by a step counter at
    max_episode_steps. -> (lengths, terminated, observations per step [B, obs_dim], reset's first)."""
    state = genv.initial_state(tf.constant(uniforms))
    obs = genv.observe(state).numpy()
    n = len(uniforms)
    lengths, terminated, done = np.zeros(n, int), np.zeros(n, bool), np.zeros(n, bool)
    trajectory = [obs]
    for t in range(1, genv.max_episode_steps + 1):
        state, obs, term = compiled_step(genv.env_id)(state, tf.constant(policy(obs, rng), tf.int32))
        obs, term = obs.numpy(), term.numpy()
        trajectory.append(obs)
        ended = ~done & (term | (t == genv.max_episode_steps))
        lengths[ended], terminated[ended], done = t, term[ended], done | ended
        if done.all():
            break
    return lengths, terminated, trajectory


def gym_episode(env: gym.Env, policy: Policy, rng: np.random.Generator | None,
                seed: int | None = None) -> tuple[int, bool, list[np.ndarray]]:
    """One episode of `gym.make(env_id)` (TimeLimit included): (length, terminated, observations)."""
    obs, _ = env.reset(seed=seed)
    trajectory = [obs]
    while True:
        obs, _, terminated, truncated, _ = env.step(int(policy(obs[None], rng)[0]))
        trajectory.append(obs)
        if terminated or truncated:  # both on a terminating step at the time limit
            return len(trajectory) - 1, terminated, trajectory


def reset_uniforms(genv: GraphEnv, seeds: range) -> np.ndarray:
    """The [0, 1) draws gymnasium's reset(seed=s) makes: its np_random is default_rng(s)."""
    return np.stack([np.random.default_rng(s).random(genv.reset_draws) for s in seeds])


def cartpole_lean(obs, rng):
    return (obs[:, 2] > 0).astype(np.int32)  # follows the pole's angle only: the cart drifts off


def cartpole_balance(obs, rng):
    return (obs[:, 2] + 0.5 * obs[:, 3] > 0).astype(np.int32)  # balances for 500 steps


def acrobot_pump(obs, rng):
    return np.where(obs[:, 5] > 0, 2, 0).astype(np.int32)  # torque along the second joint's swing


def mountain_car_pump(obs, rng):
    return np.where(obs[:, 1] >= 0, 2, 0).astype(np.int32)  # push along the velocity


def idle(obs, rng):
    return np.ones(len(obs), np.int32)


@pytest.mark.parametrize("env_id, policy, ends_by", [
    ("CartPole-v1", cartpole_lean, "terminated"),
    ("CartPole-v1", cartpole_balance, "truncated"),
    ("Acrobot-v1", acrobot_pump, "terminated"),
    ("Acrobot-v1", idle, "truncated"),
    ("MountainCar-v0", mountain_car_pump, "terminated"),
    ("MountainCar-v0", idle, "truncated"),
])
def test_fixed_policy_episodes_are_gymnasiums_step_for_step(env_id, policy, ends_by):
    """From the same reset draws, a deterministic policy gives exactly the same length and kind of
    end, and the same observations over the first 200 steps. Not beyond: the bang-bang CartPole
    balance is chaotic, and XLA's fused float ops (not bit-equal to numpy's) leave 1e-17 errors
    that grow by ~8% a step, past 1e-6 after ~300 steps (the length still matches)."""
    genv, env, seeds = graph_env(env_id), gym.make(env_id), range(4)
    lengths, terminated, trajectory = graph_episodes(genv, reset_uniforms(genv, seeds), policy, None)
    for i, seed in enumerate(seeds):
        length, term, expected = gym_episode(env, policy, None, seed=seed)
        assert (lengths[i], terminated[i]) == (length, term)
        horizon = min(length, 200) + 1
        np.testing.assert_allclose(np.array([obs[i] for obs in trajectory[:horizon]]),
                                   np.array(expected[:horizon]), rtol=1e-6, atol=1e-6)
    assert terminated.all() if ends_by == "terminated" else not terminated.any()
    assert (lengths == genv.max_episode_steps).all() == (ends_by == "truncated")


def random_policy(n_actions: int) -> Policy:
    return lambda obs, rng: rng.integers(0, n_actions, len(obs)).astype(np.int32)


def noisy(policy: Policy, n_actions: int, epsilon: float = 0.3) -> Policy:
    def act(obs, rng):
        explore = rng.random(len(obs)) < epsilon
        return np.where(explore, rng.integers(0, n_actions, len(obs)), policy(obs, rng))
    return act


@pytest.mark.parametrize("env_id, policy, episodes", [
    ("CartPole-v1", random_policy(2), 2000),
    ("Acrobot-v1", noisy(acrobot_pump, 3), 80),
    ("MountainCar-v0", noisy(mountain_car_pump, 3), 150),
])
def test_episode_length_statistics_match_gymnasiums(env_id, policy, episodes):
    """Independent randomness on each side (gymnasium's own reset RNG; numpy draws for the graph
    env's resets; separate action streams): mean and std of the episode length agree within 4
    standard errors. SE of the difference of means: sqrt(var_a / n + var_b / n); of the stds: about
    sqrt((std_a**2 + std_b**2) / (2 n)), a normal approximation, enough for a 4 SE bound."""
    genv, env = graph_env(env_id), gym.make(env_id)
    ours, _, _ = graph_episodes(genv, np.random.default_rng(7).random((episodes, genv.reset_draws)),
                                policy, np.random.default_rng(8))
    env.reset(seed=9)
    rng = np.random.default_rng(10)
    theirs = np.array([gym_episode(env, policy, rng)[0] for _ in range(episodes)])
    se_mean = np.sqrt((ours.var() + theirs.var()) / episodes)
    se_std = np.sqrt((ours.var() + theirs.var()) / (2 * episodes))
    assert abs(ours.mean() - theirs.mean()) < 4 * se_mean, (ours.mean(), theirs.mean(), se_mean)
    assert abs(ours.std() - theirs.std()) < 4 * se_std, (ours.std(), theirs.std(), se_std)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_reset_from_the_same_draws_is_gymnasiums_reset(env_id):
    genv, env = graph_env(env_id), gym.make(env_id)
    seeds = range(50)
    states = genv.initial_state(tf.constant(reset_uniforms(genv, seeds)))
    for state, obs, seed in zip(states.numpy(), genv.observe(states).numpy(), seeds, strict=True):
        expected_obs, _ = env.reset(seed=seed)
        np.testing.assert_array_equal(state, np.asarray(env.unwrapped.state, np.float64))
        np.testing.assert_array_equal(obs, expected_obs)


def reset_state(env: gym.Env) -> np.ndarray:
    env.reset()
    return np.asarray(env.unwrapped.state, np.float64)


RESET_BOUNDS = {  # gymnasium's reset: uniform(low, high) per state dim (Acrobot's cast to float32)
    "CartPole-v1": ([-0.05] * 4, [0.05] * 4),
    "Acrobot-v1": ([np.float32(-0.1)] * 4, [np.float32(0.1)] * 4),
    "MountainCar-v0": ([-0.6, 0.0], [-0.4, 0.0]),
}


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_reset_distribution_matches_gymnasiums(env_id):
    """10k resets each: all within gymnasium's bounds, the draw's extremes reach them, and mean and
    std agree within 5 standard errors (uniform: SE of a mean difference sd * sqrt(2 / n), of a
    std difference sd * sqrt(2 * (kurtosis - 1) / (4 n)) with kurtosis 1.8)."""
    genv, env, n = graph_env(env_id), gym.make(env_id), 10_000
    low, high = (np.array(b, np.float64) for b in RESET_BOUNDS[env_id])
    ours = genv.initial_state(tf.constant(np.random.default_rng(3).random((n, genv.reset_draws))))
    ours = ours.numpy()
    env.reset(seed=4)
    theirs = np.array([reset_state(env) for _ in range(n)])
    for states in (ours, theirs):
        assert ((states >= low) & (states <= high)).all()
    draws = tf.constant([[0.0] * genv.reset_draws, [np.nextafter(1.0, 0)] * genv.reset_draws])
    extremes = genv.initial_state(tf.cast(draws, tf.float64))
    np.testing.assert_array_equal(extremes[0], low)
    np.testing.assert_allclose(extremes[1], high, rtol=0, atol=1e-15)
    sd = (high - low) / np.sqrt(12)
    assert (np.abs(ours.mean(0) - theirs.mean(0)) <= 5 * sd * np.sqrt(2 / n)).all()
    assert (np.abs(ours.std(0) - theirs.std(0)) <= 5 * sd * np.sqrt(2 * 0.8 / (4 * n))).all()


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_compiles_with_xla_over_members_and_envs_and_agrees_with_eager(env_id):
    genv = graph_env(env_id)
    rng = np.random.default_rng(5)
    uniform = tf.constant(rng.random((3, 5, genv.reset_draws)))
    states = tf.constant(edge_states(env_id, rng)[:15].reshape(3, 5, genv.state_dim))
    actions = tf.constant(rng.integers(0, genv.n_actions, (3, 5)), tf.int32)

    def run(uniform, states, actions):
        initial = genv.initial_state(uniform)
        next_state, reward, terminated = genv.step(states, actions)
        return initial, genv.observe(initial), next_state, genv.observe(next_state), reward, terminated

    compiled = tf.function(run, jit_compile=True)(uniform, states, actions)
    eager = run(uniform, states, actions)
    shapes = [(3, 5, genv.state_dim), (3, 5, genv.obs_dim), (3, 5, genv.state_dim),
              (3, 5, genv.obs_dim), (3, 5), (3, 5)]
    dtypes = [tf.float64, tf.float32, tf.float64, tf.float32, tf.float32, tf.bool]
    for got, want, shape, dtype in zip(compiled, eager, shapes, dtypes, strict=True):
        assert (tuple(got.shape), got.dtype) == (shape, dtype)
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-6, atol=1e-9)


def test_only_the_three_default_envs_have_a_graph_version():
    for env_id in ENV_IDS:
        genv, env, spec = graph_env(env_id), gym.make(env_id), gym.spec(env_id)
        assert spec.kwargs == {}  # the graph env copies the default constructor's constants
        assert (genv.env_id, genv.max_episode_steps) == (env_id, spec.max_episode_steps)
        assert (genv.obs_dim, genv.n_actions) == (env.observation_space.shape[0], env.action_space.n)
    for env_id in ("CartPole-v0", "MountainCarContinuous-v0", "Pendulum-v1", "LunarLander-v3"):
        assert graph_env(env_id) is None
