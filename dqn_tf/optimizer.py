"""Adam and gradient clipping for stacked (member-axis) variables, one learning rate per member.

Adam is elementwise, so Adam on [K, ...] variables is K independent Adams as long as the step
count (bias correction), the learning rate and the clipping norm are per member. A member whose
`mask` is 0 in a step gets no update at all: its gradient, step count and step size are zeroed
(members that have not started learning, were stopped or diverged). Same update rule and
defaults as `keras.optimizers.Adam` (beta_1 0.9, beta_2 0.999, epsilon 1e-7).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

BETA_1, BETA_2, EPSILON = 0.9, 0.999, 1e-7


def member_shape(variable: tf.Variable | tf.Tensor) -> list[int]:
    """[K, 1, 1, ...]: broadcasts a per-member vector against a stacked variable."""
    return [-1] + [1] * (len(variable.shape) - 1)


def clip_per_member(grads: list[tf.Tensor], max_norm: tf.Tensor) -> list[tf.Tensor]:
    """`tf.clip_by_global_norm` applied to each member's own gradients."""
    squares = [tf.reduce_sum(tf.square(g), axis=list(range(1, len(g.shape)))) for g in grads]
    norm = tf.sqrt(tf.add_n(squares))
    scale = max_norm / tf.maximum(norm, max_norm)
    return [g * tf.reshape(scale, member_shape(g)) for g in grads]


class StackedAdam:
    def __init__(self, variables: list[tf.Variable], learning_rates: np.ndarray):
        members = len(learning_rates)
        self.learning_rates = tf.constant(learning_rates, tf.float32)
        self.steps = tf.Variable(tf.zeros([members]), trainable=False, name="adam_steps")
        self.m = [tf.Variable(tf.zeros_like(v), trainable=False, name="adam_m") for v in variables]
        self.v = [tf.Variable(tf.zeros_like(v), trainable=False, name="adam_v") for v in variables]

    @property
    def variables(self) -> list[tf.Variable]:
        return [self.steps, *self.m, *self.v]

    def apply(self, grads: list[tf.Tensor], variables: list[tf.Variable], mask: tf.Tensor) -> None:
        """One Adam step for the members with mask 1; the others stay exactly as they are."""
        steps = self.steps.assign_add(mask)
        alpha = mask * self.learning_rates * tf.sqrt(1.0 - BETA_2**steps) / (1.0 - BETA_1**steps)
        alpha = tf.where(mask > 0, alpha, 0.0)  # steps == 0 gives 0/0 for members not started
        for grad, variable, m, v in zip(grads, variables, self.m, self.v):
            grad = grad * tf.reshape(mask, member_shape(grad))
            m.assign_add((grad - m) * (1.0 - BETA_1))
            v.assign_add((tf.square(grad) - v) * (1.0 - BETA_2))
            step = tf.reshape(alpha, member_shape(variable)) * m / (tf.sqrt(v) + EPSILON)
            variable.assign_sub(step)
