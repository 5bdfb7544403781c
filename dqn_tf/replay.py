"""Replay memory: one preallocated numpy ring buffer per population member, stacked on axis 0.

Every member has its own write position and fill level (members see different numbers of real
transitions: episode ends and their skipped reset steps differ), and samples with its own RNG,
exactly as a separate run's buffer would.
"""

from __future__ import annotations

import numpy as np


class ReplayBuffer:
    """Fixed-capacity FIFO of transitions per member; one fancy-index per field when sampling.

    While every member has the same write position and fill level (always for one member; for
    a population until the first skipped reset step) those are two Python ints and appending is
    plain slice assignment, which costs a few microseconds per env step, not tens.
    """

    FIELDS = ("obs", "actions", "rewards", "next_obs", "dones")

    def __init__(self, capacity: int, obs_dim: int, members: int = 1):
        self.capacity = capacity
        self.obs = np.zeros((members, capacity, obs_dim), dtype=np.float32)
        self.next_obs = np.zeros((members, capacity, obs_dim), dtype=np.float32)
        self.actions = np.zeros((members, capacity), dtype=np.int32)
        self.rewards = np.zeros((members, capacity), dtype=np.float32)
        self.dones = np.zeros((members, capacity), dtype=np.float32)
        self._members = np.arange(members)
        self._shared: tuple[int, int] | None = (0, 0)  # (pos, size) of every member, if equal
        self._pos = np.zeros(members, dtype=np.int64)
        self._size = np.zeros(members, dtype=np.int64)

    @property
    def pos(self) -> np.ndarray:
        """Each member's next write index."""
        return np.full(len(self._members), self._shared[0]) if self._shared else self._pos

    @property
    def size(self) -> np.ndarray:
        """Each member's number of stored transitions."""
        return np.full(len(self._members), self._shared[1]) if self._shared else self._size

    def add(self, keep: np.ndarray, obs, actions, rewards, next_obs, dones, all_kept: bool | None = None) -> None:
        """Append the rows of [K, n, ...] arrays where `keep` [K, n] is set, per member
        (`all_kept`: the caller already knows whether every row is kept)."""
        n = keep.shape[1]
        if all_kept is None:
            all_kept = bool(keep.all())
        if all_kept and self._shared and self._shared[0] + n <= self.capacity:
            pos, size = self._shared  # slices are several times faster than index arrays
            where = slice(pos, pos + n)
            self.obs[:, where] = obs
            self.actions[:, where] = actions
            self.rewards[:, where] = rewards
            self.next_obs[:, where] = next_obs
            self.dones[:, where] = dones
            self._shared = ((pos + n) % self.capacity, min(size + n, self.capacity))
            return
        self._pos, self._size = self.pos, self.size
        counts = keep.sum(axis=1)
        rank = np.cumsum(keep, axis=1) - 1  # row's index among its member's kept rows
        keep = keep & (rank >= counts[:, None] - self.capacity)  # only the newest rows survive
        member, row = np.nonzero(keep)
        where = (self._pos[member] + rank[member, row]) % self.capacity
        for name, values in zip(self.FIELDS, (obs, actions, rewards, next_obs, dones)):
            getattr(self, name)[member, where] = values[member, row]
        self._set((self._pos + counts) % self.capacity, np.minimum(self._size + counts, self.capacity))

    def _set(self, pos: np.ndarray, size: np.ndarray) -> None:
        equal = (pos == pos[0]).all() and (size == size[0]).all()
        self._shared = (int(pos[0]), int(size[0])) if equal else None
        self._pos, self._size = pos, size

    def sample(
        self, rngs: list[np.random.Generator], shape: tuple[int, ...], active: np.ndarray
    ) -> dict[str, np.ndarray]:
        """Uniform sample with replacement for each active member, as [K, *shape, ...].

        Inactive members draw nothing from their RNG (as a separate run that does not train
        would not); their rows are filler that the learner masks out.
        """
        idx = np.zeros((len(rngs), *shape), dtype=np.int64)
        size = self.size
        for k in np.flatnonzero(active):
            idx[k] = rngs[k].integers(0, size[k], size=shape)
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
        self._set(state["pos"].copy(), state["size"].copy())
