"""Replay memory: one preallocated numpy ring buffer per population member, stacked on axis 0.

Members collect in lockstep (same-step autoreset: every vector step is n_envs transitions for
every member), so they share one write position and fill level; each samples with its own RNG,
exactly as its solo run's buffer would.

Vector observations are stored as float32 obs and next_obs rows. Pixel observations stay uint8
and every frame is stored once (`frames.FrameStore`): Atari's 84x84x4 stacks cost 7,056 bytes of
frames per transition instead of 56,448 (obs and next obs as uint8) or 225,792 (as float32).
A buffer that cannot fit in the host's memory is refused before anything is allocated.
"""

from __future__ import annotations

import numpy as np

from dqn_tf.errors import ConfigError
from dqn_tf.frames import FrameStore
from dqn_tf.host_memory import check_replay_fits
from dqn_tf.observations import ObsSpec

FIELDS = ("obs", "actions", "rewards", "next_obs", "dones")
ROW_FIELDS = ("actions", "rewards", "dones")


class ReplayBuffer:
    """Fixed-capacity FIFO of transitions per member; one fancy-index per field when sampling."""

    def __init__(self, capacity: int, obs_dim: int | ObsSpec, members: int = 1, n_envs: int = 1):
        """`obs_dim`: a vector's size or an ObsSpec; `n_envs`: transitions per step (pixel
        replay rebuilds frame stacks along each env's column)."""
        spec = obs_dim if isinstance(obs_dim, ObsSpec) else ObsSpec.vector(obs_dim)
        if spec.is_image and capacity < n_envs:
            raise ConfigError(f"buffer_size = {capacity}: must hold at least one step of the n_envs = {n_envs} envs")
        check_replay_fits(capacity, spec, members, n_envs)
        self.capacity = capacity
        self.frames = FrameStore(capacity, spec, members, n_envs) if spec.is_image else None
        if self.frames is None:
            self.obs = np.zeros((members, capacity, *spec.shape), dtype=np.float32)
            self.next_obs = np.zeros((members, capacity, *spec.shape), dtype=np.float32)
        self.actions = np.zeros((members, capacity), dtype=np.int32)
        self.rewards = np.zeros((members, capacity), dtype=np.float32)
        self.dones = np.zeros((members, capacity), dtype=np.float32)
        self.pos = 0  # next write index
        self.size = 0  # transitions stored

    def _stored(self) -> tuple[str, ...]:
        """The fields kept as arrays of rows here (observations live in the FrameStore for pixels)."""
        return FIELDS if self.frames is None else ROW_FIELDS

    def add(self, obs, actions, rewards, next_obs, dones) -> None:
        """Append [K, n, ...] arrays: n transitions for each member."""
        n = actions.shape[1]
        if self.frames is not None:
            self.frames.add(obs, next_obs)
        if self.pos + n <= self.capacity:
            where = slice(self.pos, self.pos + n)  # slices are several times faster than index arrays
        else:
            where = np.arange(self.pos, self.pos + n) % self.capacity
            if n > self.capacity:  # only the newest rows survive
                where, obs, actions, rewards, next_obs, dones = (
                    where[-self.capacity:], *(x[:, -self.capacity:] for x in (obs, actions, rewards, next_obs, dones))
                )
        values = dict(zip(FIELDS, (obs, actions, rewards, next_obs, dones)))
        for name in self._stored():
            getattr(self, name)[:, where] = values[name]
        self.pos = (self.pos + n) % self.capacity
        self.size = min(self.size + n, self.capacity)

    def sample(self, rngs: list[np.random.Generator], shape: tuple[int, ...]) -> dict[str, np.ndarray]:
        """Uniform sample with replacement for each member from its own RNG, as [K, *shape, ...]."""
        idx = np.stack([rng.integers(0, self.size, size=shape) for rng in rngs])
        members = np.arange(len(rngs)).reshape(-1, *([1] * len(shape)))
        batch = {name: getattr(self, name)[members, idx] for name in self._stored()}
        if self.frames is not None:
            batch["obs"], batch["next_obs"] = self.frames.sample(idx)
        return {name: batch[name] for name in FIELDS}

    def keep(self, rows: list[int]) -> None:
        """Only these members' memories remain (the others stopped)."""
        for name in self._stored():
            setattr(self, name, getattr(self, name)[rows])
        if self.frames is not None:
            self.frames.keep(rows)

    def state(self) -> dict[str, np.ndarray]:
        """The filled part, for checkpoints."""
        arrays = {name: getattr(self, name)[:, : self.size] for name in self._stored()}
        if self.frames is not None:
            arrays.update({f"frames/{name}": v for name, v in self.frames.state(self.size).items()})
        return {**arrays, "pos": np.array(self.pos), "size": np.array(self.size)}

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        self.pos, self.size = int(state["pos"]), int(state["size"])
        for name in self._stored():
            getattr(self, name)[:, : self.size] = state[name]
        if self.frames is not None:
            self.frames.load_state({k.removeprefix("frames/"): v for k, v in state.items() if k.startswith("frames/")})
