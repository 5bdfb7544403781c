"""Greedy evaluation on separate envs: one vector env, one episode per sub-env, all at once.

Each population member has its own Evaluator (its own seed and count), as its solo run has.
Evaluation envs are built with `training=False`: whole games and raw rewards (Atari: no life-loss
ends, no clipping), so returns are true game scores. They are made as the training envs are:
same `env_kwargs`, same `env_wrappers` (as Stable-Baselines3 and rl-zoo do), so a reward-scaling
wrapper scales evaluation returns too.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dqn_tf.env_source import EnvSource
from dqn_tf.envs import make_vector_env, observation_dtype
from dqn_tf.policy import Layers, greedy


class Evaluator:
    def __init__(self, env: str | EnvSource | Any, n_episodes: int, seed: int):
        self.env = make_vector_env(env, n_episodes, training=False)
        self.dtype = observation_dtype(self.env.single_observation_space)
        self.seed = seed
        self.count = 0

    def run(self, layers: Layers) -> dict[str, float]:
        """Mean/std/min/max over `n_episodes` greedy episodes of one member, fresh seeds each time."""
        seed = int(np.random.SeedSequence([self.seed, self.count]).generate_state(1)[0] >> 1)
        self.count += 1
        obs, _ = self.env.reset(seed=seed)
        n = self.env.num_envs
        returns = np.zeros(n)
        running = np.ones(n, dtype=bool)
        while running.any():
            obs, rewards, terminated, truncated, _ = self.env.step(greedy(layers, obs.astype(self.dtype)))
            returns += np.where(running, rewards, 0.0)
            running &= ~(terminated | truncated)
        return {
            "mean_return": float(returns.mean()),
            "std_return": float(returns.std()),
            "min_return": float(returns.min()),
            "max_return": float(returns.max()),
            "episodes": n,
        }

    def close(self) -> None:
        self.env.close()
