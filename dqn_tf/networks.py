"""Q-networks as plain lists of weights: one MLP per population member, each its own variables.

Members are not stacked into batched matmuls: each member's forward and backward pass is the
same graph as its solo run's, so member k computes bit-for-bit what `train` with its config
computes (a batched matmul rounds differently from a plain one in the last bit, and RL amplifies
that until the curves part). Member k's initial weights are those Keras' seeded GlorotUniform
gives a `Dense` layer for that member's seed.
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import tensorflow as tf


@dataclasses.dataclass(frozen=True)
class Architecture:
    obs_dim: int
    n_actions: int
    net_arch: tuple[int, ...]
    dueling: bool

    def layer_shapes(self) -> list[tuple[str, int, int]]:
        """(name, fan_in, units) in order: hidden layers, then the head(s)."""
        shapes, fan_in = [], self.obs_dim
        for i, units in enumerate(self.net_arch):
            shapes.append((f"hidden_{i}", fan_in, units))
            fan_in = units
        if self.dueling:
            return shapes + [("value", fan_in, 1), ("advantage", fan_in, self.n_actions)]
        return shapes + [("q_values", fan_in, self.n_actions)]

    def greedy_layer_indices(self) -> list[int]:
        """Layers whose chain gives argmax Q: with a dueling head that is the advantage stream
        (V and mean(A) are the same for every action), so the value head is skipped."""
        count = len(self.net_arch)
        return list(range(count)) + [count + (1 if self.dueling else 0)]


def initial_weights(arch: Architecture, seed: int) -> list[np.ndarray]:
    """[kernel, bias, kernel, bias, ...] of one member."""
    layer_seeds = np.random.default_rng(seed).integers(0, 2**31 - 1, size=len(arch.net_arch) + 2)
    weights = []
    for (_, fan_in, units), layer_seed in zip(arch.layer_shapes(), layer_seeds.tolist()):
        init = keras.initializers.GlorotUniform(seed=layer_seed)
        weights += [np.asarray(init((fan_in, units)), np.float32), np.zeros(units, np.float32)]
    return weights


def q_values(arch: Architecture, weights: list[tf.Tensor], obs: tf.Tensor) -> tf.Tensor:
    """Q-values [..., B, n_actions] for observations [..., B, obs_dim]: one member's weights, or
    members' weights stacked on a leading axis (kernels [K, in, out], biases [K, 1, out]); XLA's
    batched matmul gives each member the bits of its own plain one."""
    hidden = obs
    count = len(arch.net_arch)
    for i in range(count):
        hidden = tf.nn.relu(tf.matmul(hidden, weights[2 * i]) + weights[2 * i + 1])
    head = tf.matmul(hidden, weights[2 * count]) + weights[2 * count + 1]
    if not arch.dueling:
        return head
    advantage = tf.matmul(hidden, weights[2 * count + 2]) + weights[2 * count + 3]
    return head + advantage - tf.reduce_mean(advantage, axis=-1, keepdims=True)
