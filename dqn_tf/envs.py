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


def reset_seed(env: gym.vector.VectorEnv, seeds: list[int], n_envs: int) -> int | list[int]:
    """The `reset(seed=...)` argument that gives each member's sub-envs its own seed.

    A Sync vector env seeds sub-env i of member k with seeds[k] + i, exactly as a separate run's
    `reset(seed=seeds[k])` does. A native vector env (CartPole's) has one RNG for all sub-envs,
    so with several members it gets one seed derived from all of theirs.
    """
    if len(seeds) == 1:
        return seeds[0]
    if isinstance(env, (gym.vector.SyncVectorEnv, gym.vector.AsyncVectorEnv)):
        return [seed + i for seed in seeds for i in range(n_envs)]
    return int(np.random.SeedSequence(seeds).generate_state(1)[0] >> 1)


class EpisodeTracker:
    """Running return and length per env; finished episodes go to their member's list."""

    def __init__(self, num_envs: int, members: int = 1):
        self.returns = np.zeros(num_envs, dtype=np.float64)
        self.lengths = np.zeros(num_envs, dtype=np.int64)
        self.envs_per_member = num_envs // members
        self.episodes: list[list[dict]] = [[] for _ in range(members)]

    def update(
        self, rewards: np.ndarray, kept: np.ndarray, done: np.ndarray, steps: np.ndarray, all_kept: bool
    ) -> None:
        """`kept`: envs whose transition counts; `steps`: each member's counter before this step
        (an episode's `step` is its member's counter after the step, as in a separate run)."""
        if all_kept:  # the common case, without the masking
            self.returns += rewards
            self.lengths += 1
        else:
            self.returns += np.where(kept, rewards, 0.0)
            self.lengths += kept
        if not done.any():
            return
        steps = steps + kept.reshape(len(self.episodes), self.envs_per_member).sum(axis=1)
        for i in np.flatnonzero(done):
            member = i // self.envs_per_member
            episodes = self.episodes[member]
            episodes.append(
                {
                    "episode": len(episodes),
                    "step": int(steps[member]),
                    "return": float(self.returns[i]),
                    "length": int(self.lengths[i]),
                }
            )
            self.returns[i] = 0.0
            self.lengths[i] = 0


class Collector:
    """Steps the population's vector env (member k owns sub-envs [k*n, (k+1)*n)) and marks
    which transitions are real (never a reset step) and counted (the member still trains).

    `dones` holds `terminated` only: a truncated episode is not terminal for the Bellman target,
    and its `next_obs` is the true final observation because autoreset happens a step later.
    """

    def __init__(self, env: gym.vector.VectorEnv, seeds: list[int]):
        self.env = env
        self.members = len(seeds)
        self.n_envs = env.num_envs // self.members
        self.obs, _ = env.reset(seed=reset_seed(env, seeds, self.n_envs))
        self.obs = self.obs.astype(np.float32)
        self.pending_reset = np.zeros(env.num_envs, dtype=bool)
        self.all_kept = True  # whether every transition of the last step was kept
        self.tracker = EpisodeTracker(env.num_envs, self.members)

    def step(self, actions: np.ndarray, steps: np.ndarray, counting: np.ndarray | None = None):
        """Returns (obs, actions, rewards, next_obs, terminated, kept) for this vector step.

        `steps` [K]: each member's transition counter before the step; `counting` [K]: members
        still collecting (a finished or stopped member's envs run on but count for nothing);
        None when all do.
        """
        next_obs, rewards, terminated, truncated, _ = self.env.step(actions)
        next_obs = next_obs.astype(np.float32)
        kept = ~self.pending_reset
        if counting is not None:
            kept &= np.repeat(counting, self.n_envs)
        self.all_kept = bool(kept.all())
        done = (terminated | truncated) & kept
        self.tracker.update(rewards, kept, done, steps, self.all_kept)
        transition = (self.obs, actions, rewards.astype(np.float32), next_obs, terminated, kept)
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
            seed = sum(len(episodes) for episodes in self.tracker.episodes) + 1
            self.obs = self.env.reset(seed=seed)[0].astype(np.float32)
            self.pending_reset[:] = False
            self.tracker.returns[:] = 0.0
            self.tracker.lengths[:] = 0
