"""Envs a user might write, for the custom-env tests: importing this module registers them
(tests name it in `env_packages`, as a user names their own package).

- `Faulty-v0`: a 3-value observation, two actions, 20-step episodes; at its `fail_at`-th step
  (counted over the env's life, 0: never) it raises (`fault="raise"`), returns NaN
  (`fault="nan"`) or returns an observation of the wrong shape (`fault="shape"`).
- `DictObs-v0`: Dict observations (flattened by the trainer); `SequenceObs-v0`: observations
  no flattening turns into a vector.
"""

import gymnasium as gym
import numpy as np


class Faulty(gym.Env):
    observation_space = gym.spaces.Box(-1.0, 1.0, (3,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, fault: str = "raise", fail_at: int = 0):
        self.fault, self.fail_at, self.total, self.steps = fault, fail_at, 0, 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.steps = 0
        return np.zeros(3, np.float32), {}

    def step(self, action):
        self.total += 1
        self.steps += 1
        obs = np.full(3, 0.5 if int(action) else -0.5, np.float32)
        if self.total == self.fail_at:
            if self.fault == "raise":
                raise RuntimeError(f"Faulty broke at env step {self.total}")
            obs = np.full(3, np.nan, np.float32) if self.fault == "nan" else np.zeros(4, np.float32)
        return obs, float(action), False, self.steps >= 20, {}


class DictObs(gym.Env):
    observation_space = gym.spaces.Dict({"position": gym.spaces.Box(-1.0, 1.0, (2,), np.float32),
                                         "colour": gym.spaces.Discrete(3)})
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return {"position": np.zeros(2, np.float32), "colour": 1}, {}

    def step(self, action):
        return {"position": np.zeros(2, np.float32), "colour": int(action)}, 1.0, False, False, {}


class SequenceObs(DictObs):
    observation_space = gym.spaces.Dict({"items": gym.spaces.Sequence(gym.spaces.Discrete(2))})


for _id, _entry in (("Faulty-v0", Faulty), ("DictObs-v0", DictObs), ("SequenceObs-v0", SequenceObs)):
    if _id not in gym.registry:
        gym.register(_id, entry_point=_entry, max_episode_steps=50)
