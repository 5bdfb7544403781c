"""Counter-based random numbers for the compiled loop: uniforms that are a hash of (member key,
stream, counters, element index), so a program carries and checkpoints no RNG state and a
member's draws never depend on another's. Streams keep the purposes apart (acting, resets,
replay sampling, env steps, evaluation).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from dqn_tf.config import TrainConfig

ACT, RESET, SAMPLE, EVAL, STEP, EVAL_STEP = 1, 2, 3, 4, 5, 6  # random streams


def _mix(x: tf.Tensor) -> tf.Tensor:
    """lowbias32, a strong 32-bit integer hash (Wellons)."""
    x = tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, 16)) * tf.constant(0x7FEB352D, tf.uint32)
    x = tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, 15)) * tf.constant(0x846CA68B, tf.uint32)
    return tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, 16))


def _u32(value) -> tf.Tensor:
    return tf.cast(tf.bitwise.bitwise_and(tf.cast(value, tf.int64), 0xFFFFFFFF), tf.uint32)


def random_bits(keys: tf.Tensor, stream: int, counters: list, shape: list[int]) -> tf.Tensor:
    """uint32 [K, *shape]: a hash of member key, stream, counters and the element's index."""
    h = _mix(keys ^ tf.constant(stream * 0x9E3779B9 & 0xFFFFFFFF, tf.uint32))
    for counter in counters:
        counter = tf.cast(counter, tf.int64)
        h = _mix(h ^ _u32(counter))
        h = _mix(h ^ _u32(tf.bitwise.right_shift(counter, 32)))
    size = int(np.prod(shape))
    index = tf.reshape(tf.cast(tf.range(size), tf.uint32), [1, *shape])
    h = tf.reshape(h, [-1] + [1] * len(shape))
    return _mix(_mix(h ^ index) + tf.constant(0x6A09E667, tf.uint32))


def uniform(keys, stream, counters, shape, dtype=tf.float32) -> tf.Tensor:
    """[K, *shape] uniforms in [0, 1): float32 on a 2**-24 grid, or float64 on a 2**-32 one."""
    bits = random_bits(keys, stream, counters, shape)
    if dtype == tf.float64:
        return tf.cast(bits, tf.float64) * 2.0**-32
    return tf.cast(tf.bitwise.right_shift(bits, 8), tf.float32) * 2.0**-24


def member_keys(configs: list[TrainConfig]) -> np.ndarray:
    """One uint32 key per member, from its seed alone."""
    return np.array([np.random.SeedSequence([c.seed, 0xD9]).generate_state(1)[0] for c in configs], np.uint32)
