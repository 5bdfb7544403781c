"""What the replay and the network need to know about an env's observations, as plain data.

Vectors are float32 and used as they are. Pixels stay uint8 from the env to the network (4x less
replay memory and host-to-device traffic than float32); the network casts them and multiplies by
`scale` (1 / the space's upper bound: 1/255 for Atari's grey levels, 1 for MinAtar's 0/1
channels, so neither ends up in [0, 1/255]). `frame_stack` > 1 says the last axis holds that many
frames, oldest first, shifted by one frame per step (Atari's 4-frame stack), which the replay
uses to store each frame once.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np


@dataclasses.dataclass(frozen=True)
class ObsSpec:
    shape: tuple[int, ...]
    dtype: str = "float32"
    scale: float = 1.0
    frame_stack: int = 1

    def __post_init__(self) -> None:
        if self.frame_stack > 1 and (len(self.shape) != 3 or self.shape[-1] % self.frame_stack):
            raise ValueError(f"frame_stack = {self.frame_stack}: needs [H, W, C] observations with C a "
                             f"multiple of it, got shape {self.shape}")

    @classmethod
    def vector(cls, dim: int) -> ObsSpec:
        return cls((int(dim),))

    @classmethod
    def of(cls, env: Any) -> ObsSpec:
        """From a gymnasium vector env: its single observation space, and its `frame_stack`
        attribute (envs that stack frames on the last axis say how many; default 1)."""
        space = env.single_observation_space
        dtype = np.dtype(space.dtype)
        if dtype == np.uint8:
            return cls(tuple(int(n) for n in space.shape), "uint8", 1.0 / float(np.max(space.high)),
                       int(getattr(env, "frame_stack", 1)))
        return cls(tuple(int(n) for n in space.shape))

    @property
    def is_image(self) -> bool:
        return len(self.shape) == 3

    @property
    def nbytes(self) -> int:
        """Bytes of one observation as stored."""
        return math.prod(self.shape) * np.dtype(self.dtype).itemsize
