"""Acting: epsilon-greedy over a numpy mirror of each member's online network.

Why numpy and not a `tf.function`: with one or a few envs, acting is one tiny forward pass per
env step, and calling any `tf.function` costs an order of magnitude more than this mirror for a
small MLP (`benchmarks/trainer.py --micro`; docs/performance.md). Weights change only in train
calls, so the mirror is refreshed after each one. Each member gets its own plain matmuls (not a
batched one), so its actions are exactly its solo run's.
"""

from __future__ import annotations

import numpy as np

# (kernel [in, out], bias [out]) of one member's MLP; for CNNs and pixels an object with
# `scores(obs)` and `n_actions` that runs the network in TensorFlow (networks.CompiledGreedy)
Layers = list[tuple[np.ndarray, np.ndarray]]


def scores(layers: Layers, obs: np.ndarray) -> np.ndarray:
    """[n, obs_dim] -> [n, n_actions] (the advantage stream for a dueling head)."""
    if not isinstance(layers, list):
        return layers.scores(obs)
    hidden = obs
    for kernel, bias in layers[:-1]:
        hidden = np.maximum(hidden @ kernel + bias, 0.0)
    kernel, bias = layers[-1]
    return hidden @ kernel + bias


def greedy(layers: Layers, obs: np.ndarray) -> np.ndarray:
    return np.argmax(scores(layers, obs), axis=1)


def act(members: list[Layers], obs: np.ndarray, epsilons: np.ndarray, rngs: list[np.random.Generator],
        uniform: bool) -> np.ndarray:
    """[K, n] actions for observations [K, n, obs_dim]. Member k draws from its own RNG what its
    solo run draws: uniformly random actions while `uniform` (before `learning_starts`, as SB3
    does), else epsilon-greedy (the greedy pass is skipped when every env explores)."""
    n_actions = members[0][-1][0].shape[1] if isinstance(members[0], list) else members[0].n_actions
    n = obs.shape[1]
    actions = np.empty(obs.shape[:2], dtype=np.int64)
    for k, (layers, rng) in enumerate(zip(members, rngs)):
        if uniform:
            actions[k] = rng.integers(0, n_actions, size=n)
            continue
        explore = rng.random(n) < epsilons[k]
        if explore.all():
            actions[k] = rng.integers(0, n_actions, size=n)
        elif explore.any():
            actions[k] = np.where(explore, rng.integers(0, n_actions, size=n), greedy(layers, obs[k]))
        else:
            actions[k] = greedy(layers, obs[k])
    return actions
