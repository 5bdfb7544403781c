"""A corridor of `length` cells: start at the left end, reach the right end.

Actions: 0 left, 1 right. Reward: +1 for reaching the right end (the episode terminates), and
`step_cost` taken every step. The episode is truncated after `max_steps` steps. Observations:
the one-hot position (float32, `length` values).
"""

from __future__ import annotations

from typing import ClassVar

import gymnasium as gym
import numpy as np


class Corridor(gym.Env):
    metadata: ClassVar[dict] = {"render_modes": []}

    def __init__(self, length: int = 8, max_steps: int = 50, step_cost: float = 0.01):
        if length < 2:
            raise ValueError(f"length must be at least 2, got {length}")
        self.length, self.max_steps, self.step_cost = length, max_steps, step_cost
        self.observation_space = gym.spaces.Box(0.0, 1.0, (length,), np.float32)
        self.action_space = gym.spaces.Discrete(2)
        self.position = self.steps = 0

    def _obs(self) -> np.ndarray:
        obs = np.zeros(self.length, np.float32)
        obs[self.position] = 1.0
        return obs

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.position = self.steps = 0
        return self._obs(), {}

    def step(self, action):
        self.position = max(0, min(self.length - 1, self.position + (1 if int(action) == 1 else -1)))
        self.steps += 1
        terminated = self.position == self.length - 1
        reward = (1.0 if terminated else 0.0) - self.step_cost
        return self._obs(), reward, terminated, self.steps >= self.max_steps, {}
