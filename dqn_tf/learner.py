"""The DQN learner: online and target Q-networks, Adam, and a compiled multi-step train call.

One call of `train` runs all the gradient steps of a training phase inside a `tf.range` loop,
so Python dispatch is paid once per phase. Each step runs under the strategy with
`strategy.run`: every replica takes its slice of the global batch, computes per-example Huber
losses averaged over the *global* batch, the gradients are summed across replicas, clipped by
their global norm and applied once. That makes N replicas compute exactly the one-device update.
"""

from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf

from dqn_tf.config import ConfigError, TrainConfig
from dqn_tf.networks import build_q_network, greedy_layers
from dqn_tf.strategy import DevicePlan


class Learner:
    def __init__(self, config: TrainConfig, obs_dim: int, n_actions: int, plan: DevicePlan):
        self.config = config
        self.strategy = plan.strategy
        self.replicas = plan.replicas
        if config.batch_size % self.replicas:
            raise ConfigError(
                f"batch_size = {config.batch_size}: must be divisible by the {self.replicas} "
                f"replicas of devices = {config.devices!r}"
            )
        with self.strategy.scope():
            args = (obs_dim, n_actions, config.net_arch, config.dueling, config.seed)
            self.online = build_q_network(*args, name="online")
            self.target = build_q_network(*args, name="target")
            self.optimizer = keras.optimizers.Adam(learning_rate=config.learning_rate)
            self.optimizer.build(self.online.trainable_variables)
        self.target.set_weights(self.online.get_weights())
        signature = [
            tf.TensorSpec([None, None, obs_dim], tf.float32),
            tf.TensorSpec([None, None], tf.int32),
            tf.TensorSpec([None, None], tf.float32),
            tf.TensorSpec([None, None, obs_dim], tf.float32),
            tf.TensorSpec([None, None], tf.float32),
            tf.TensorSpec([], tf.float32),
        ]
        # XLA fuses the small ops of a step (~10% faster on CPU) but cannot span logical devices.
        # Calling the concrete function skips argument matching: ~0.3-0.9 ms less per call.
        self._train = tf.function(
            self._train_steps, input_signature=signature, jit_compile=self.replicas == 1
        ).get_concrete_function()

    def train(self, batch: dict[str, np.ndarray], target_tau: float) -> dict[str, float]:
        """Blend the target net by `target_tau`, then one gradient step per leading batch row."""
        # Converting up front is ~0.4 ms/call cheaper than letting tf.function convert numpy.
        args = [tf.constant(batch[name]) for name in ("obs", "actions", "rewards", "next_obs", "dones")]
        loss, q_mean = self._train(*args, tf.constant(target_tau, tf.float32)).numpy()
        loss, q_mean = float(loss), float(q_mean)
        return {"loss": loss, "q_mean": q_mean, "finite": math.isfinite(loss) and math.isfinite(q_mean)}

    def _train_steps(self, obs, actions, rewards, next_obs, dones, target_tau):
        for target_var, online_var in zip(self.target.weights, self.online.weights):
            target_var.assign(target_tau * online_var + (1.0 - target_tau) * target_var)
        loss_sum = tf.constant(0.0)
        q_sum = tf.constant(0.0)
        steps = tf.shape(obs)[0]
        for i in tf.range(steps):
            loss, q_mean = self._one_step(obs[i], actions[i], rewards[i], next_obs[i], dones[i])
            loss_sum += loss
            q_sum += q_mean
        return tf.stack([loss_sum, q_sum]) / tf.cast(steps, tf.float32)

    def _one_step(self, obs, actions, rewards, next_obs, dones):
        per_replica = self.strategy.run(
            self._replica_gradients, args=(obs, actions, rewards, next_obs, dones)
        )
        grads, loss, q_mean = self.strategy.reduce(
            tf.distribute.ReduceOp.SUM, per_replica, axis=None
        )
        grads, _ = tf.clip_by_global_norm(grads, self.config.max_grad_norm)
        self.optimizer.apply(grads, self.online.trainable_variables)
        return loss, q_mean

    def _replica_gradients(self, obs, actions, rewards, next_obs, dones):
        """This replica's share of the global-batch gradient (sums to the full one)."""
        global_batch = self.config.batch_size
        if self.replicas > 1:
            share = global_batch // self.replicas
            start = tf.distribute.get_replica_context().replica_id_in_sync_group * share
            obs, actions, rewards, next_obs, dones = (
                x[start : start + share] for x in (obs, actions, rewards, next_obs, dones)
            )
        next_q = self.target(next_obs, training=False)
        if self.config.double_dqn:
            best = tf.argmax(self.online(next_obs, training=False), axis=1, output_type=tf.int32)
            next_value = tf.gather(next_q, best, batch_dims=1)
        else:
            next_value = tf.reduce_max(next_q, axis=1)
        targets = tf.stop_gradient(rewards + self.config.gamma * (1.0 - dones) * next_value)
        with tf.GradientTape() as tape:
            q_taken = tf.gather(self.online(obs, training=True), actions, batch_dims=1)
            per_example = keras.losses.huber(targets[:, None], q_taken[:, None])
            loss = tf.nn.compute_average_loss(per_example, global_batch_size=global_batch)
        grads = tape.gradient(loss, self.online.trainable_variables)
        q_share = tf.reduce_sum(q_taken) / global_batch
        return grads, loss, q_share

    def greedy_layers(self) -> list[tuple[np.ndarray, np.ndarray]]:
        return greedy_layers(self.online)

    def state(self) -> dict[str, list[np.ndarray]]:
        return {
            "online": self.online.get_weights(),
            "target": self.target.get_weights(),
            "optimizer": [np.asarray(v.numpy()) for v in self.optimizer.variables],
        }

    def load_state(self, state: dict[str, list[np.ndarray]]) -> None:
        self.online.set_weights(state["online"])
        self.target.set_weights(state["target"])
        for variable, value in zip(self.optimizer.variables, state["optimizer"], strict=True):
            variable.assign(value)
