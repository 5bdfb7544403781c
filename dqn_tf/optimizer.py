"""Adam, gradient clipping and dynamic loss scaling for one member's variables.

Each member has its own Adam (step count, moments, learning rate) and clips its own gradients
by their global norm, as its solo run does. Same update rule and defaults as
`keras.optimizers.Adam` (beta_1 0.9, beta_2 0.999, epsilon 1e-7).

Under MirroredStrategy these run in replica context on all-reduced (identical) gradients: the
variables are MirroredVariables with the default aggregation NONE, so an assign in replica
context writes that replica's own copy, and every copy takes the same update without any
further communication (TensorFlow's custom-training-loop pattern, minus the merge_call).
"""

from __future__ import annotations

import tensorflow as tf

BETA_1, BETA_2, EPSILON = 0.9, 0.999, 1e-7
# Keras' LossScaleOptimizer defaults: start high, halve on a non-finite step, double after 2000 good ones.
INITIAL_LOSS_SCALE, LOSS_SCALE_GROWTH_STEPS = 2.0**15, 2000


def clip_by_norm(grads: list[tf.Tensor], max_norm: float) -> list[tf.Tensor]:
    """Scale the gradients so that their global norm is at most `max_norm`."""
    norm = tf.sqrt(tf.add_n([tf.reduce_sum(tf.square(g)) for g in grads]))
    scale = max_norm / tf.maximum(norm, max_norm)
    return [g * scale for g in grads]


class LossScale:
    """Dynamic loss scaling for float16 compute (our Adam is not a Keras optimizer, so Keras'
    LossScaleOptimizer cannot wrap it; this is its rule): gradients too small for float16 are
    scaled up with the loss and back down in float32; a step with non-finite gradients is
    skipped and halves the scale."""

    def __init__(self) -> None:
        self.scale = tf.Variable(INITIAL_LOSS_SCALE, trainable=False, name="loss_scale")
        self.good_steps = tf.Variable(0.0, trainable=False, name="loss_scale_good_steps")

    @property
    def variables(self) -> list[tf.Variable]:
        return [self.scale, self.good_steps]

    def update(self, grads: list[tf.Tensor]) -> tf.Tensor:
        """Move the scale after a step's (unscaled) gradients; True where the step may apply."""
        finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(g)) for g in grads])
        grow = finite & (self.good_steps + 1.0 >= LOSS_SCALE_GROWTH_STEPS)
        self.scale.assign(tf.where(grow, self.scale * 2.0, tf.where(finite, self.scale, self.scale * 0.5)))
        self.good_steps.assign(tf.where(finite & ~grow, self.good_steps + 1.0, 0.0))
        return finite


def adam_rate(learning_rate, steps):
    """Adam's bias-corrected step size after `steps` updates (elementwise: one per member)."""
    return learning_rate * tf.sqrt(1.0 - BETA_2**steps) / (1.0 - BETA_1**steps)


def adam_update(grads, variables, ms, vs, rate) -> None:
    """One Adam update of `variables` and their moments with step size `rate`; the Python loop's
    learner (one member) and the compiled loop (members stacked, `rate` broadcast per member)
    both take it."""
    for grad, variable, m, v in zip(grads, variables, ms, vs):
        m.assign_add((grad - m) * (1.0 - BETA_1))
        v.assign_add((tf.square(grad) - v) * (1.0 - BETA_2))
        variable.assign_sub(rate * m / (tf.sqrt(v) + EPSILON))


class Adam:
    def __init__(self, variables: list[tf.Variable], learning_rate: float, loss_scaled: bool = False):
        self.learning_rate = learning_rate
        self.steps = tf.Variable(0.0, trainable=False, name="adam_steps")
        self.m = [tf.Variable(tf.zeros_like(v), trainable=False, name="adam_m") for v in variables]
        self.v = [tf.Variable(tf.zeros_like(v), trainable=False, name="adam_v") for v in variables]
        self.loss_scale = LossScale() if loss_scaled else None

    @property
    def variables(self) -> list[tf.Variable]:
        scaling = self.loss_scale.variables if self.loss_scale else []
        return [self.steps, *self.m, *self.v, *scaling]

    def apply(self, grads: list[tf.Tensor], variables: list[tf.Variable]) -> None:
        adam_update(grads, variables, self.m, self.v, adam_rate(self.learning_rate, self.steps.assign_add(1.0)))

    def apply_if(self, ok: tf.Tensor, grads: list[tf.Tensor], variables: list[tf.Variable]) -> None:
        """`apply` where `ok`, else leave everything as it is (branch-free, so XLA keeps one
        program and no replica can take another branch)."""
        steps = self.steps + 1.0
        alpha = adam_rate(self.learning_rate, steps)
        self.steps.assign(tf.where(ok, steps, self.steps))
        for grad, variable, m, v in zip(grads, variables, self.m, self.v):
            m_new = m + (grad - m) * (1.0 - BETA_1)
            v_new = v + (tf.square(grad) - v) * (1.0 - BETA_2)
            variable.assign(tf.where(ok, variable - alpha * m_new / (tf.sqrt(v_new) + EPSILON), variable))
            m.assign(tf.where(ok, m_new, m))
            v.assign(tf.where(ok, v_new, v))
