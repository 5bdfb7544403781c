"""Vectorised gymnasium environments with next-step autoreset, handled uniformly.

Gymnasium 1.x vector envs (native ones such as CartPole's, and SyncVectorEnv by default)
autoreset on the *next* step: the step that ends an episode returns the true final observation,
and the following step for that env only resets it (its action is ignored, its reward is 0).
`Collector` therefore never stores that reset step, and a truncated episode's transition keeps
its true final observation to bootstrap from.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode

from dqn_tf.config import ConfigError


def make_vector_env(env_id: str, num_envs: int) -> gym.vector.VectorEnv:
    """The env's native vector implementation where it has one (10-100x faster), else Sync."""
    spec = gym.spec(env_id)
    mode = "vector_entry_point" if spec.vector_entry_point is not None else "sync"
    kwargs = {} if mode == "vector_entry_point" else {"vector_kwargs": {"autoreset_mode": AutoresetMode.NEXT_STEP}}
    env = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode=mode, **kwargs)
    if env.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP) != AutoresetMode.NEXT_STEP:
        raise ConfigError(f"env_id = {env_id!r}: its vector env does not autoreset on the next step")
    return env


def check_spaces(env_id: str, env: gym.vector.VectorEnv) -> tuple[int, int]:
    """DQN needs flat Box observations and a Discrete action space: (obs_dim, n_actions)."""
    obs_space, act_space = env.single_observation_space, env.single_action_space
    if not isinstance(act_space, gym.spaces.Discrete):
        raise ConfigError(
            f"env_id = {env_id!r}: DQN needs a Discrete action space, got {type(act_space).__name__}"
        )
    if not isinstance(obs_space, gym.spaces.Box) or len(obs_space.shape) != 1:
        raise ConfigError(
            f"env_id = {env_id!r}: needs a flat Box observation space, got {obs_space}"
        )
    return int(obs_space.shape[0]), int(act_space.n)


def check_env(env_id: str) -> tuple[int, int]:
    """Fail fast, before TensorFlow starts, on envs DQN cannot train on."""
    env = make_vector_env(env_id, 1)
    try:
        return check_spaces(env_id, env)
    finally:
        env.close()


class EpisodeTracker:
    """Running return and length per env; finished episodes are appended to `episodes`."""

    def __init__(self, num_envs: int):
        self.returns = np.zeros(num_envs, dtype=np.float64)
        self.lengths = np.zeros(num_envs, dtype=np.int64)
        self.episodes: list[dict] = []

    def update(self, rewards: np.ndarray, valid: np.ndarray, done: np.ndarray, step: int) -> None:
        if valid.all():  # the common case, without the masking
            self.returns += rewards
            self.lengths += 1
        else:
            self.returns += np.where(valid, rewards, 0.0)
            self.lengths += valid
        if not done.any():
            return
        for i in np.flatnonzero(done):
            self.episodes.append(
                {
                    "episode": len(self.episodes),
                    "step": step,
                    "return": float(self.returns[i]),
                    "length": int(self.lengths[i]),
                }
            )
            self.returns[i] = 0.0
            self.lengths[i] = 0


class Collector:
    """Steps the vector env and yields only real transitions (never a reset step).

    `dones` holds `terminated` only: a truncated episode is not terminal for the Bellman target,
    and its `next_obs` is the true final observation because autoreset happens a step later.
    """

    def __init__(self, env: gym.vector.VectorEnv, seed: int):
        self.env = env
        self.obs, _ = env.reset(seed=seed)
        self.obs = self.obs.astype(np.float32)
        self.pending_reset = np.zeros(env.num_envs, dtype=bool)
        self.tracker = EpisodeTracker(env.num_envs)

    def step(self, actions: np.ndarray, step_count: int):
        """Returns (obs, actions, rewards, next_obs, terminated, valid) for this vector step."""
        next_obs, rewards, terminated, truncated, _ = self.env.step(actions)
        next_obs = next_obs.astype(np.float32)
        valid = ~self.pending_reset
        done = (terminated | truncated) & valid
        self.tracker.update(rewards, valid, done, step_count + int(valid.sum()))
        transition = (self.obs, actions, rewards.astype(np.float32), next_obs, terminated, valid)
        self.pending_reset = terminated | truncated
        self.obs = next_obs
        return transition

    def __getstate__(self) -> dict:
        """Native vector envs pickle whole (exact resume); Sync ones hold closures and don't,
        so they are rebuilt and reset on load: episodes in flight then restart."""
        state = self.__dict__.copy()
        if isinstance(self.env, gym.vector.SyncVectorEnv):
            state["env"] = (self.env.spec.id, self.env.num_envs)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        if isinstance(self.env, tuple):
            env_id, num_envs = self.env
            self.env = make_vector_env(env_id, num_envs)
            seed = len(self.tracker.episodes) + 1
            self.obs = self.env.reset(seed=seed)[0].astype(np.float32)
            self.pending_reset[:] = False
            self.tracker.returns[:] = 0.0
            self.tracker.lengths[:] = 0
