"""minatar's Python lists of entities (bullets, fish, subs, divers) as fixed-capacity slots.

A list is a dict of int32 fields [..., capacity] with an "alive" field; the live entries fill the
first slots in list order (oldest first, as minatar appends) and every field of an empty slot is
0, so equal lists are equal tensors. Steps mark removed entries dead; `compact` then closes the
gaps keeping the order, as Python's list.remove does.

minatar's loops visit entries one after another, newest first, and an entry's fate can depend on
what earlier visits removed (a bullet takes the first fish of its cell that is still there). Here
such a loop is one vectorised step: within a cell, the k-th visitor meets the k-th entry still
there, so ranks within cells (`rank_in_cell`) say who meets whom. No loop over slots: XLA's CPU
runtime pays per operation, and a while loop over 24 slots cost milliseconds a step.
"""

from __future__ import annotations

import tensorflow as tf

EntityList = dict[str, tf.Tensor]


def empty(shape: tf.Tensor, capacity: int, names: tuple[str, ...]) -> EntityList:
    zeros = tf.zeros(tf.concat([shape, [capacity]], axis=0), tf.int32)
    return {"alive": zeros, **{name: zeros for name in names}}


def same_cell(ax: tf.Tensor, ay: tf.Tensor, bx: tf.Tensor, by: tf.Tensor) -> tf.Tensor:
    """[..., A, B]: entry a of one list and entry b of another are in the same cell."""
    return (ax[..., :, None] == bx[..., None, :]) & (ay[..., :, None] == by[..., None, :])


def count_with(pairs: tf.Tensor) -> tf.Tensor:
    """[..., A, B] -> [..., A]: how many b each a is paired with."""
    return tf.reduce_sum(tf.cast(pairs, tf.int32), axis=-1)


def rank_in_cell(live: tf.Tensor, x: tf.Tensor, y: tf.Tensor, newest_first: bool) -> tf.Tensor:
    """[..., C]: how many live entries of the same list share each entry's cell and come before
    it in a visit newest first (higher slots) or oldest first (lower slots)."""
    capacity = live.shape[-1]
    index = tf.range(capacity)
    before = index[None, :] > index[:, None] if newest_first else index[None, :] < index[:, None]
    pairs = same_cell(x, y, x, y) & live[..., None, :] & before
    return count_with(pairs)


def append_newest_first(entities: EntityList, where: tf.Tensor, values: dict[str, tf.Tensor]) -> EntityList:
    """Appends the entries `where` ([..., C]) of another list, visited newest first, with their
    `values` ([..., C] each); a full list takes no more (capacities are chosen so that play never
    fills them)."""
    alive = entities["alive"]
    count = tf.reduce_sum(alive, axis=-1, keepdims=True)
    taken = tf.cast(where, tf.int32)
    position = count + tf.cumsum(taken, axis=-1, reverse=True, exclusive=True)
    slots = tf.one_hot(position, alive.shape[-1], dtype=tf.int32) * taken[..., None]  # [..., C, capacity]
    added = {name: tf.reduce_sum(tf.cast(v, tf.int32)[..., None] * slots, axis=-2) for name, v in values.items()}
    placed = tf.reduce_sum(slots, axis=-2)
    merged = {name: tf.where(placed > 0, added[name], entities[name]) for name in values}
    return {**entities, **merged, "alive": tf.maximum(alive, placed)}


def append(entities: EntityList, where: tf.Tensor, values: dict[str, tf.Tensor]) -> EntityList:
    """Appends one entry with `values` ([...] each) where `where` ([...])."""
    return append_newest_first(entities, where[..., None], {name: v[..., None] for name, v in values.items()})


def compact(entities: EntityList) -> EntityList:
    """Drops the dead entries, keeping the live ones in order at the front; zeroes the rest."""
    alive = entities["alive"]
    capacity = alive.shape[-1]
    target = tf.cumsum(alive, axis=-1) - 1  # where each live entry goes
    moves = tf.one_hot(target, capacity, dtype=tf.int32) * alive[..., None]  # [..., from, to]
    return {name: tf.reduce_sum(values[..., None] * moves, axis=-2) for name, values in entities.items()}
