"""Replay memory: a preallocated numpy ring buffer with uniform sampling."""

from __future__ import annotations

import numpy as np


class ReplayBuffer:
    """Fixed-capacity FIFO of transitions; one fancy-index per field when sampling."""

    FIELDS = ("obs", "actions", "rewards", "next_obs", "dones")

    def __init__(self, capacity: int, obs_dim: int):
        self.capacity = capacity
        self.obs = np.zeros((capacity, obs_dim), dtype=np.float32)
        self.next_obs = np.zeros((capacity, obs_dim), dtype=np.float32)
        self.actions = np.zeros(capacity, dtype=np.int32)
        self.rewards = np.zeros(capacity, dtype=np.float32)
        self.dones = np.zeros(capacity, dtype=np.float32)
        self.pos = 0
        self.size = 0

    def add(self, obs, actions, rewards, next_obs, dones) -> None:
        """Append a batch of n transitions, overwriting the oldest when full."""
        n = len(actions)
        if n == 0:
            return
        if n > self.capacity:  # only the newest `capacity` rows survive anyway
            obs, actions, rewards, next_obs, dones = (
                x[-self.capacity :] for x in (obs, actions, rewards, next_obs, dones)
            )
            n = self.capacity
        end = self.pos + n
        if end <= self.capacity:  # slices are several times faster than index arrays
            where: slice | np.ndarray = slice(self.pos, end)
        else:
            where = np.arange(self.pos, end) % self.capacity
        self.obs[where] = obs
        self.actions[where] = actions
        self.rewards[where] = rewards
        self.next_obs[where] = next_obs
        self.dones[where] = dones
        self.pos = end % self.capacity
        self.size = min(self.size + n, self.capacity)

    def sample(self, rng: np.random.Generator, shape: tuple[int, ...]) -> dict[str, np.ndarray]:
        """Uniform sample with replacement, arranged as `shape` (e.g. (gradient_steps, batch))."""
        idx = rng.integers(0, self.size, size=shape)
        return {name: getattr(self, name)[idx] for name in self.FIELDS}

    def state(self) -> dict[str, np.ndarray]:
        """The filled part plus the write position, for checkpoints."""
        arrays = {name: getattr(self, name)[: self.size] for name in self.FIELDS}
        return {**arrays, "pos": np.array(self.pos), "size": np.array(self.size)}

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        size = int(state["size"])
        for name in self.FIELDS:
            getattr(self, name)[:size] = state[name]
        self.size, self.pos = size, int(state["pos"])
