"""An environment whose rewards are NaN: training on it diverges for real (trainer and fault tests)."""

import gymnasium as gym
import numpy as np

ENV_ID = "NanReward-v0"


class NanRewardEnv(gym.Env):
    observation_space = gym.spaces.Box(-1, 1, (2,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(2, np.float32), {}

    def step(self, action):
        return np.zeros(2, np.float32), float("nan"), False, False, {}


def register() -> str:
    """Register the env (once per process) and return its id."""
    if ENV_ID not in gym.registry:
        gym.register(ENV_ID, entry_point=NanRewardEnv, max_episode_steps=50)
    return ENV_ID
