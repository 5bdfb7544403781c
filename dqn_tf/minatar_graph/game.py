"""What every in-graph MinAtar game shares: the state as named int32 fields, the sticky action,
a game that has ended staying ended, observations as 10x10 one-hot channels, and the draws.

A game's state is one int32 vector [..., state_dim] of named fields (`FIELDS`: scalars and
10x10 maps, row-major), so the compiled loop stores, resets and checkpoints it like any other
in-graph env. Every field minatar keeps is there, so tests compare whole states, not only
observations.

Randomness: a step gets `step_draws` uniforms in [0, 1): slot 0 decides the sticky action, the
game's own draws follow in fixed slots (each game names them). They become minatar's numbers as
numpy would make them from a uniform u: `rand() < p` is `u < p`, `randint(low, high)` is
`low + floor(u * (high - low))`; tests hand minatar the same uniforms through a stand-in for its
RandomState, so both sides agree draw for draw.
"""

from __future__ import annotations

from typing import ClassVar

import tensorflow as tf

from dqn_tf.graph_envs import GraphEnv

STICKY_ACTION_PROB = 0.1  # minatar.Environment's default, as MinAtar/*-v1 use it
SIDE = 10
Fields = dict[str, tf.Tensor]


def randint(u: tf.Tensor, low: int | tf.Tensor, high: int | tf.Tensor) -> tf.Tensor:
    """numpy's randint(low, high) from its uniform draw: low + floor(u * (high - low)), int32."""
    span = tf.cast(high - low, tf.float64)
    return low + tf.cast(tf.floor(tf.cast(u, tf.float64) * span), tf.int32)  # exact: no float32 rounding up


def cell(y: tf.Tensor, x: tf.Tensor) -> tf.Tensor:
    """A 10x10 map [..., 100] int32 with a 1 at (y, x)."""
    return tf.one_hot(y * SIDE + x, SIDE * SIDE, dtype=tf.int32)


def at(grid: tf.Tensor, y: tf.Tensor, x: tf.Tensor) -> tf.Tensor:
    """grid[..., y, x] of a flat 10x10 map [..., 100] (y, x may lie outside: then 0)."""
    inside = (y >= 0) & (y < SIDE) & (x >= 0) & (x < SIDE)
    index = tf.clip_by_value(y, 0, SIDE - 1) * SIDE + tf.clip_by_value(x, 0, SIDE - 1)
    value = tf.reduce_sum(grid * tf.one_hot(index, SIDE * SIDE, dtype=grid.dtype), axis=-1)
    return tf.where(inside, value, tf.zeros_like(value))


class MinAtarGame(GraphEnv):
    """A MinAtar game: `FIELDS` after the shared ones, `start` and `act` per game."""

    CHANNELS: ClassVar[int]
    FIELDS: ClassVar[tuple[tuple[str, int], ...]]  # the game's own (name, size), after SHARED
    SHARED: ClassVar[tuple[tuple[str, int], ...]] = (("last_action", 1), ("terminal", 1))
    state_dtype = tf.int32
    obs_dtype = "uint8"

    @property
    def obs_shape(self) -> tuple[int, ...]:
        return (SIDE, SIDE, self.CHANNELS)

    @classmethod
    def layout(cls) -> tuple[tuple[str, int], ...]:
        return cls.SHARED + cls.FIELDS

    @classmethod
    def size(cls) -> int:
        return sum(size for _, size in cls.layout())

    def unpack(self, state: tf.Tensor) -> Fields:
        """state [..., state_dim] -> {name: [...] scalar or [..., size] map}."""
        fields, start = {}, 0
        for name, size in self.layout():
            fields[name] = state[..., start] if size == 1 else state[..., start:start + size]
            start += size
        return fields

    def pack(self, fields: Fields) -> tf.Tensor:
        parts = [fields[name][..., None] if size == 1 else fields[name] for name, size in self.layout()]
        return tf.concat([tf.cast(part, tf.int32) for part in parts], axis=-1)

    def initial_state(self, uniform: tf.Tensor) -> tf.Tensor:
        fields = self.start(tf.cast(uniform, tf.float32))
        zeros = tf.zeros(tf.shape(uniform)[:-1], tf.int32)
        return self.pack({"last_action": zeros, "terminal": zeros, **fields})

    def restart(self, previous: tf.Tensor, uniform: tf.Tensor) -> tf.Tensor:
        """minatar's reset keeps the last action, which the next step's sticky draw may repeat."""
        fresh = self.initial_state(uniform)
        return tf.concat([previous[..., :1], fresh[..., 1:]], axis=-1)

    def step(self, state: tf.Tensor, action: tf.Tensor,
             uniform: tf.Tensor | None = None) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """minatar.Environment.act: the sticky draw may repeat the last action; a game that
        ended does nothing more (reward 0, still terminal) but still records the action."""
        fields = self.unpack(state)
        action = tf.where(uniform[..., 0] < STICKY_ACTION_PROB, fields["last_action"], action)
        moved, reward = self.act(fields, action, uniform[..., 1:])
        ended = fields["terminal"] > 0
        next_state = tf.where(ended[..., None], state, self.pack({**fields, **moved}))
        next_state = tf.concat([action[..., None], next_state[..., 1:]], axis=-1)
        reward = tf.where(ended, tf.zeros_like(reward), reward)
        return next_state, tf.cast(reward, tf.float32), next_state[..., 1] > 0

    def observe(self, state: tf.Tensor) -> tf.Tensor:
        channels = self.channels(self.unpack(state))  # each [..., 100], 0/1
        stacked = tf.stack([tf.minimum(c, 1) for c in channels], axis=-1)
        shape = tf.concat([tf.shape(state)[:-1], [SIDE, SIDE, self.CHANNELS]], axis=0)
        return tf.cast(tf.reshape(stacked, shape), tf.uint8)

    # -- per game --------------------------------------------------------------------------

    def start(self, uniform: tf.Tensor) -> Fields:
        """The game's fields after minatar's reset, from its `reset_draws` uniforms."""
        raise NotImplementedError

    def act(self, fields: Fields, action: tf.Tensor, uniform: tf.Tensor) -> tuple[Fields, tf.Tensor]:
        """The game's env.act(a) on a running game: changed fields ("terminal" among them when it
        ends) and the reward; `action` indexes the minimal action set."""
        raise NotImplementedError

    def channels(self, fields: Fields) -> list[tf.Tensor]:
        """The observation's channels in minatar's order, each a 10x10 map [..., 100]."""
        raise NotImplementedError

