"""Acting: epsilon-greedy over a numpy mirror of the population's online networks.

Why numpy and not a `tf.function`: with one or a few envs, acting is one tiny forward pass per
env step, and calling any `tf.function` costs ~200-400 us here while this mirror costs ~15 us
for a 4-256-256-2 MLP (measured: benchmarks/trainer.py --micro). Weights change only in train
calls, so the mirror is refreshed after each one; all members' envs are acted for in one batched
pass ([K, n, in] @ [K, in, out]).
"""

from __future__ import annotations

import numpy as np


class GreedyPolicy:
    """argmax_a Q_k(s, a) for each member k, from stacked (kernel [K, in, out], bias [K, out])."""

    def __init__(self, layers: list[tuple[np.ndarray, np.ndarray]]):
        self.layers = layers
        self.n_actions = layers[-1][0].shape[2]

    def member(self, k: int) -> GreedyPolicy:
        """Member k alone (a population of one), e.g. for its evaluation."""
        return GreedyPolicy([(kernel[k : k + 1], bias[k : k + 1]) for kernel, bias in self.layers])

    def scores(self, obs: np.ndarray) -> np.ndarray:
        """[K, n, obs_dim] -> [K, n, n_actions] (the advantage stream for a dueling head)."""
        hidden = obs
        for kernel, bias in self.layers[:-1]:
            hidden = np.maximum(hidden @ kernel + bias[:, None, :], 0.0)
        kernel, bias = self.layers[-1]
        return hidden @ kernel + bias[:, None, :]

    def greedy(self, obs: np.ndarray) -> np.ndarray:
        return np.argmax(self.scores(obs), axis=2)

    def act(self, obs: np.ndarray, epsilons: list[float], rngs: list[np.random.Generator]) -> np.ndarray:
        """Epsilon-greedy per env, [K, n] actions. Member k draws from its own RNG exactly what a
        separate run would; the greedy pass is skipped when every env of every member explores."""
        members, n = obs.shape[:2]
        explore = np.empty((members, n), dtype=bool)
        random_actions = None
        for k, (rng, epsilon) in enumerate(zip(rngs, epsilons)):
            explore[k] = row = rng.random(n) < epsilon
            if row.any():
                if random_actions is None:
                    random_actions = np.zeros((members, n), dtype=np.int64)
                random_actions[k] = rng.integers(0, self.n_actions, size=n)
        if random_actions is None:
            return self.greedy(obs)
        if explore.all():
            return random_actions
        return np.where(explore, random_actions, self.greedy(obs))
