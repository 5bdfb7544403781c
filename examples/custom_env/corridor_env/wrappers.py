"""A wrapper with a keyword, for `env_wrappers: [{corridor_env.wrappers:ScaleReward: {scale: 2.0}}]`."""

import gymnasium as gym


class ScaleReward(gym.RewardWrapper):
    """Multiplies every reward by `scale`."""

    def __init__(self, env: gym.Env, scale: float = 1.0):
        super().__init__(env)
        self.scale = scale

    def reward(self, reward):
        return self.scale * reward
