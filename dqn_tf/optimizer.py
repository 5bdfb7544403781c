"""Adam and gradient clipping for one member's variables.

Each member has its own Adam (step count, moments, learning rate) and clips its own gradients
by their global norm, as its solo run does. Same update rule and defaults as
`keras.optimizers.Adam` (beta_1 0.9, beta_2 0.999, epsilon 1e-7).
"""

from __future__ import annotations

import tensorflow as tf

BETA_1, BETA_2, EPSILON = 0.9, 0.999, 1e-7


def clip_by_norm(grads: list[tf.Tensor], max_norm: float) -> list[tf.Tensor]:
    """Scale the gradients so that their global norm is at most `max_norm`."""
    norm = tf.sqrt(tf.add_n([tf.reduce_sum(tf.square(g)) for g in grads]))
    scale = max_norm / tf.maximum(norm, max_norm)
    return [g * scale for g in grads]


class Adam:
    def __init__(self, variables: list[tf.Variable], learning_rate: float):
        self.learning_rate = learning_rate
        self.steps = tf.Variable(0.0, trainable=False, name="adam_steps")
        self.m = [tf.Variable(tf.zeros_like(v), trainable=False, name="adam_m") for v in variables]
        self.v = [tf.Variable(tf.zeros_like(v), trainable=False, name="adam_v") for v in variables]

    @property
    def variables(self) -> list[tf.Variable]:
        return [self.steps, *self.m, *self.v]

    def apply(self, grads: list[tf.Tensor], variables: list[tf.Variable]) -> None:
        steps = self.steps.assign_add(1.0)
        alpha = self.learning_rate * tf.sqrt(1.0 - BETA_2**steps) / (1.0 - BETA_1**steps)
        for grad, variable, m, v in zip(grads, variables, self.m, self.v):
            m.assign_add((grad - m) * (1.0 - BETA_1))
            v.assign_add((tf.square(grad) - v) * (1.0 - BETA_2))
            variable.assign_sub(alpha * m / (tf.sqrt(v) + EPSILON))
