"""Replay memory: one preallocated numpy ring buffer per population member, stacked on axis 0.

Every member has its own write position and fill level (members see different numbers of real
transitions: episode ends and their skipped reset steps differ), and samples with its own RNG,
exactly as a separate run's buffer would.
"""

from __future__ import annotations

import numpy as np


class ReplayBuffer:
    """Fixed-capacity FIFO of transitions per member; one fancy-index per field when sampling."""

    FIELDS = ("obs", "actions", "rewards", "next_obs", "dones")

    def __init__(self, capacity: int, obs_dim: int, members: int = 1):
        self.capacity = capacity
        self.obs = np.zeros((members, capacity, obs_dim), dtype=np.float32)
        self.next_obs = np.zeros((members, capacity, obs_dim), dtype=np.float32)
        self.actions = np.zeros((members, capacity), dtype=np.int32)
        self.rewards = np.zeros((members, capacity), dtype=np.float32)
        self.dones = np.zeros((members, capacity), dtype=np.float32)
        self.pos = np.zeros(members, dtype=np.int64)
        self.size = np.zeros(members, dtype=np.int64)
        self._members = np.arange(members)

    def add(self, keep: np.ndarray, obs, actions, rewards, next_obs, dones) -> None:
        """Append the rows of [K, n, ...] arrays where `keep` [K, n] is set, per member."""
        n = keep.shape[1]
        pos = int(self.pos[0])
        if pos + n <= self.capacity and keep.all() and (self.pos == pos).all():
            # The common case: every member appends all n rows at the same place. Slices are
            # several times faster than index arrays.
            where = slice(pos, pos + n)
            for name, values in zip(self.FIELDS, (obs, actions, rewards, next_obs, dones)):
                getattr(self, name)[:, where] = values
            self.pos = (self.pos + n) % self.capacity
            self.size = np.minimum(self.size + n, self.capacity)
            return
        counts = keep.sum(axis=1)
        rank = np.cumsum(keep, axis=1) - 1  # row's index among its member's kept rows
        keep = keep & (rank >= counts[:, None] - self.capacity)  # only the newest rows survive
        member, row = np.nonzero(keep)
        where = (self.pos[member] + rank[member, row]) % self.capacity
        for name, values in zip(self.FIELDS, (obs, actions, rewards, next_obs, dones)):
            getattr(self, name)[member, where] = values[member, row]
        self.pos = (self.pos + counts) % self.capacity
        self.size = np.minimum(self.size + counts, self.capacity)

    def sample(
        self, rngs: list[np.random.Generator], shape: tuple[int, ...], active: np.ndarray
    ) -> dict[str, np.ndarray]:
        """Uniform sample with replacement for each active member, as [K, *shape, ...].

        Inactive members draw nothing from their RNG (as a separate run that does not train
        would not); their rows are filler that the learner masks out.
        """
        idx = np.zeros((len(rngs), *shape), dtype=np.int64)
        for k in np.flatnonzero(active):
            idx[k] = rngs[k].integers(0, self.size[k], size=shape)
        members = self._members.reshape(-1, *([1] * len(shape)))
        return {name: getattr(self, name)[members, idx] for name in self.FIELDS}

    def state(self) -> dict[str, np.ndarray]:
        """Everything, for checkpoints (members fill at different rates, so no trimming)."""
        arrays = {name: getattr(self, name)[:, : int(self.size.max())] for name in self.FIELDS}
        return {**arrays, "pos": self.pos.copy(), "size": self.size.copy()}

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        filled = state["obs"].shape[1]
        for name in self.FIELDS:
            getattr(self, name)[:, :filled] = state[name]
        self.pos, self.size = state["pos"].copy(), state["size"].copy()
