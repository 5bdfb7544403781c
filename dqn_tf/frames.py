"""Pixel observations in replay with every frame stored once.

An observation is S frames stacked on its last axis, oldest first (Atari: S = 4 grey frames;
MinAtar: S = 1, the whole [10, 10, C] image is the frame). Within an episode each step shifts
the stack by one frame, so a transition only brings one new frame: the newest frame of its next
observation. Transition `a` (absolute count; env column e of step t is `a = t * n + e`) stores
that frame; its observation and next observation are rebuilt from the frames of transitions
a, a - n, a - 2n, ... of the same env, back to where its episode started. An episode's first
observation (after a reset, whatever padding the env uses) is stored whole in a small ring of
episode starts, referenced by the episode's first S transitions.

Episode starts are found by content, not by flags: a transition continues its env's episode when
its observation equals the previous next observation of that env (the true final observation at
an episode's end, as `add` receives it). So same-step autoreset, truncation, and Atari's
life-loss terminals (the game goes on) all come out right, and sampled observations equal what
was added, bit for bit. The frame ring holds S * n frames more than the buffer's capacity, so
the oldest transitions' stacks are intact.
"""

from __future__ import annotations

import numpy as np

from dqn_tf.host_memory import INITIAL_STARTS
from dqn_tf.observations import ObsSpec


class FrameStore:
    """obs / next_obs of a ring of transitions, [K, capacity] rows, as deduplicated frames."""

    def __init__(self, capacity: int, obs: ObsSpec, members: int, n_envs: int):
        height, width, channels = obs.shape
        self.capacity, self.n, self.stack = capacity, n_envs, obs.frame_stack
        self.channels = channels // obs.frame_stack  # per frame
        self.shape = obs.shape
        self.frame_count = capacity + self.stack * n_envs
        self.frames = np.zeros((members, self.frame_count, height, width, self.channels), np.uint8)
        starts = n_envs + INITIAL_STARTS
        self.starts = np.zeros((members, starts, self.stack, height, width, self.channels), np.uint8)
        self.start_until = np.full((members, starts), -1, np.int64)  # last transition using the slot
        self.start_next = np.zeros(members, np.int64)  # ring position of each member's next start
        self.age = np.zeros((members, capacity), np.uint8)  # steps since the episode began, capped at S
        self.start_of = np.zeros((members, capacity), np.int32)  # the episode's start slot (age < S)
        self.last_next: np.ndarray | None = None  # the previous step's next observations [K, n, ...]
        self.last_age = np.zeros((members, n_envs), np.int64)
        self.last_start = np.zeros((members, n_envs), np.int64)
        self.total = 0  # transitions ever added

    def add(self, obs: np.ndarray, next_obs: np.ndarray) -> None:
        """One vector step: [K, n, H, W, C] observations and true next observations."""
        members, n = obs.shape[:2]
        if n != self.n:
            raise ValueError(f"pixel replay was built for n_envs = {self.n}, got a step of {n} transitions")
        c = self.channels
        if self.stack > 1 and not np.array_equal(next_obs[..., :-c], obs[..., c:]):
            raise ValueError(f"observations are not stacks of {self.stack} frames shifting by one per step "
                             "(frame_stack of the env's ObsSpec is wrong)")
        absolute = self.total + np.arange(n)
        rows = absolute % self.capacity
        if self.last_next is None:
            continues = np.zeros((members, n), bool)
        else:
            continues = (obs == self.last_next).reshape(members, n, -1).all(axis=2)
        age = np.where(continues, np.minimum(self.last_age + 1, self.stack), 0)
        start = self.last_start.copy()
        oldest_live = max(self.total + n - self.capacity, 0)  # unused slots say -1
        for k, e in zip(*np.nonzero(~continues)):
            slot = self._free_start_slot(k, oldest_live)
            self.starts[k, slot] = self._split(obs[k, e])
            self.start_until[k, slot] = absolute[e] + (self.stack - 1) * n
            start[k, e] = slot
        self.age[:, rows], self.start_of[:, rows] = age, start
        self.frames[:, absolute % self.frame_count] = next_obs[..., -c:]
        self.last_next, self.last_age, self.last_start = next_obs.copy(), age, start
        self.total += n

    def _free_start_slot(self, k: int, oldest_live: int) -> int:
        """The member's next ring slot; the ring doubles when that slot still serves a live transition."""
        slot = int(self.start_next[k])
        if self.start_until[k, slot] >= oldest_live:
            grown = self.starts.shape[1]
            self.starts = np.concatenate([self.starts, np.zeros_like(self.starts)], axis=1)
            self.start_until = np.concatenate([self.start_until, np.full_like(self.start_until, -1)], axis=1)
            slot = grown
        self.start_next[k] = (slot + 1) % self.starts.shape[1]
        return slot

    def _split(self, obs: np.ndarray) -> np.ndarray:
        """[..., H, W, S * c] -> [..., S, H, W, c]."""
        split = obs.reshape(*obs.shape[:-1], self.stack, self.channels)
        return np.moveaxis(split, -2, -4)

    def sample(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """obs and next_obs [K, *rows.shape[1:], H, W, C] of these rows (each < the buffer's size)."""
        members = np.arange(rows.shape[0]).reshape(-1, *([1] * (rows.ndim - 1)))
        newest = self.total - 1 - (((self.total - 1) % self.capacity - rows) % self.capacity)
        age = self.age[members, rows].astype(np.int64)
        start = self.start_of[members, rows]
        obs = self._stack(members, newest - self.n, age, start)
        next_obs = self._stack(members, newest, np.minimum(age + 1, self.stack), start)
        return obs, next_obs

    def _stack(self, members: np.ndarray, newest: np.ndarray, since: np.ndarray, start: np.ndarray) -> np.ndarray:
        """Observations whose newest frame is transition `newest`'s, `since` frames after their
        episode's start stack (0: the start stack itself)."""
        position = np.arange(self.stack)  # oldest first
        from_frames = position >= self.stack - since[..., None]
        transitions = newest[..., None] - (self.stack - 1 - position) * self.n
        out = self.frames[members[..., None], transitions % self.frame_count]  # [..., S, H, W, c]
        if not from_frames.all():
            where = ~from_frames
            member = np.broadcast_to(members[..., None], where.shape)[where]
            slot = np.broadcast_to(start[..., None], where.shape)[where]
            out[where] = self.starts[member, slot, (position + since[..., None])[where]]
        joined = np.moveaxis(out, -4, -2)  # [..., H, W, S, c]
        return joined.reshape(*joined.shape[:-2], self.stack * self.channels)

    def keep(self, rows: list[int]) -> None:
        for name in ("frames", "starts", "start_until", "start_next", "age", "start_of", "last_age", "last_start"):
            setattr(self, name, getattr(self, name)[rows])
        if self.last_next is not None:
            self.last_next = self.last_next[rows]

    def state(self, size: int) -> dict[str, np.ndarray]:
        """The filled part, for checkpoints."""
        filled = min(self.total, self.frame_count)
        last_next = self.last_next if self.last_next is not None else np.zeros((len(self.age), 0), np.uint8)
        return {"frames": self.frames[:, :filled], "starts": self.starts, "start_until": self.start_until,
                "start_next": self.start_next, "age": self.age[:, :size], "start_of": self.start_of[:, :size],
                "last_next": last_next, "last_age": self.last_age, "last_start": self.last_start,
                "total": np.array(self.total)}

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        self.total = int(state["total"])
        filled, size = state["frames"].shape[1], state["age"].shape[1]
        self.frames[:, :filled] = state["frames"]
        self.age[:, :size], self.start_of[:, :size] = state["age"], state["start_of"]
        self.starts, self.start_until = state["starts"].copy(), state["start_until"].copy()
        self.start_next, self.last_age, self.last_start = (state[name].copy() for name in
                                                           ("start_next", "last_age", "last_start"))
        self.last_next = state["last_next"].copy() if state["last_next"].size else None
