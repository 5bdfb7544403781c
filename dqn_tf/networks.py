"""Q-networks: a Keras 3 MLP from `net_arch`, with an optional dueling head."""

from __future__ import annotations

import keras
import numpy as np


def build_q_network(
    obs_dim: int, n_actions: int, net_arch: tuple[int, ...], dueling: bool, seed: int, name: str
) -> keras.Model:
    """ReLU MLP -> Q-values; dueling: Q = V + A - mean(A). Initialisers are seeded (determinism)."""
    seeds = iter(np.random.default_rng(seed).integers(0, 2**31 - 1, size=len(net_arch) + 2).tolist())

    def dense(units: int, layer_name: str, activation: str | None = None) -> keras.layers.Dense:
        init = keras.initializers.GlorotUniform(seed=next(seeds))
        return keras.layers.Dense(units, activation=activation, kernel_initializer=init, name=layer_name)

    inputs = keras.Input((obs_dim,), name="obs")
    hidden = inputs
    for i, units in enumerate(net_arch):
        hidden = dense(units, f"hidden_{i}", "relu")(hidden)
    if dueling:
        value = dense(1, "value")(hidden)
        advantage = dense(n_actions, "advantage")(hidden)
        q_values = value + advantage - keras.ops.mean(advantage, axis=1, keepdims=True)
    else:
        q_values = dense(n_actions, "q_values")(hidden)
    return keras.Model(inputs, q_values, name=name)


def greedy_layers(model: keras.Model) -> list[tuple[np.ndarray, np.ndarray]]:
    """(kernel, bias) of the hidden layers and of the layer whose argmax is the greedy action.

    With a dueling head the argmax of Q equals the argmax of the advantage stream
    (V and mean(A) are the same for every action), so the value stream is not needed.
    """
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    chosen = [layer for layer in dense if layer.name.startswith("hidden_")]
    chosen.append(next(layer for layer in dense if layer.name in ("q_values", "advantage")))
    return [(layer.kernel.numpy(), layer.bias.numpy()) for layer in chosen]
