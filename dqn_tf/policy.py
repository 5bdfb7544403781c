"""Acting: epsilon-greedy over a numpy mirror of the online network.

Why numpy and not a `tf.function`: with one or a few envs, acting is one tiny forward pass per
env step, and calling any `tf.function` costs ~200-400 us here while this mirror costs ~13 us
for a 4-256-256-2 MLP (measured: benchmarks/trainer.py --micro). Weights change only in train
calls, so the mirror is refreshed after each one; all envs are acted for in one batched pass.
"""

from __future__ import annotations

import numpy as np


class GreedyPolicy:
    """argmax_a Q(s, a) for a batch of observations, from (kernel, bias) pairs."""

    def __init__(self, layers: list[tuple[np.ndarray, np.ndarray]]):
        self.layers = layers
        self.n_actions = layers[-1][0].shape[1]

    def scores(self, obs: np.ndarray) -> np.ndarray:
        hidden = obs
        for kernel, bias in self.layers[:-1]:
            hidden = np.maximum(hidden @ kernel + bias, 0.0)
        kernel, bias = self.layers[-1]
        return hidden @ kernel + bias

    def greedy(self, obs: np.ndarray) -> np.ndarray:
        return np.argmax(self.scores(obs), axis=1)

    def act(self, obs: np.ndarray, epsilon: float, rng: np.random.Generator) -> np.ndarray:
        """Epsilon-greedy per env; the greedy pass is skipped when every env explores."""
        explore = rng.random(len(obs)) < epsilon
        if not explore.any():
            return self.greedy(obs)
        random_actions = rng.integers(0, self.n_actions, size=len(obs))
        if explore.all():
            return random_actions
        return np.where(explore, random_actions, self.greedy(obs))
