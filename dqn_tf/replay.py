"""Replay memory: one preallocated numpy ring buffer per population member, stacked on axis 0.

Members collect in lockstep (same-step autoreset: every vector step is n_envs transitions for
every member), so they share one write position and fill level; each samples with its own RNG,
exactly as its solo run's buffer would.
"""

from __future__ import annotations

import numpy as np

FIELDS = ("obs", "actions", "rewards", "next_obs", "dones")


class ReplayBuffer:
    """Fixed-capacity FIFO of transitions per member; one fancy-index per field when sampling."""

    def __init__(self, capacity: int, obs_dim: int, members: int = 1):
        self.capacity = capacity
        self.obs = np.zeros((members, capacity, obs_dim), dtype=np.float32)
        self.next_obs = np.zeros((members, capacity, obs_dim), dtype=np.float32)
        self.actions = np.zeros((members, capacity), dtype=np.int32)
        self.rewards = np.zeros((members, capacity), dtype=np.float32)
        self.dones = np.zeros((members, capacity), dtype=np.float32)
        self.pos = 0  # next write index
        self.size = 0  # transitions stored

    def add(self, obs, actions, rewards, next_obs, dones) -> None:
        """Append [K, n, ...] arrays: n transitions for each member."""
        n = actions.shape[1]
        if self.pos + n <= self.capacity:
            where = slice(self.pos, self.pos + n)  # slices are several times faster than index arrays
        else:
            where = np.arange(self.pos, self.pos + n) % self.capacity
            if n > self.capacity:  # only the newest rows survive
                where, obs, actions, rewards, next_obs, dones = (
                    where[-self.capacity:], *(x[:, -self.capacity:] for x in (obs, actions, rewards, next_obs, dones))
                )
        for name, values in zip(FIELDS, (obs, actions, rewards, next_obs, dones)):
            getattr(self, name)[:, where] = values
        self.pos = (self.pos + n) % self.capacity
        self.size = min(self.size + n, self.capacity)

    def sample(self, rngs: list[np.random.Generator], shape: tuple[int, ...]) -> dict[str, np.ndarray]:
        """Uniform sample with replacement for each member from its own RNG, as [K, *shape, ...]."""
        idx = np.stack([rng.integers(0, self.size, size=shape) for rng in rngs])
        members = np.arange(len(rngs)).reshape(-1, *([1] * len(shape)))
        return {name: getattr(self, name)[members, idx] for name in FIELDS}

    def keep(self, rows: list[int]) -> None:
        """Only these members' memories remain (the others stopped)."""
        for name in FIELDS:
            setattr(self, name, getattr(self, name)[rows])

    def state(self) -> dict[str, np.ndarray]:
        """The filled part, for checkpoints."""
        arrays = {name: getattr(self, name)[:, : self.size] for name in FIELDS}
        return {**arrays, "pos": np.array(self.pos), "size": np.array(self.size)}

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        self.pos, self.size = int(state["pos"]), int(state["size"])
        for name in FIELDS:
            getattr(self, name)[:, : self.size] = state[name]
