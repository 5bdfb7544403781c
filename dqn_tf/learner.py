"""The DQN learner for a population of K members: per-member online/target nets and Adams, and
one compiled call that runs all gradient steps of a training phase for every member.

One call of `train` runs the phase's gradient steps inside a `tf.range` loop, so Python
dispatch is paid once per phase for the whole population. Each member's step is the graph its
solo run would build (its own variables, its own loss, gradients, clipping and Adam), so member
k computes exactly what `train` with its config computes, and one member's NaN cannot reach
another. A single agent is a population of one.

Under MirroredStrategy (TensorFlow's custom-training-loop recipe): each replica is fed only its
shard of the global batch (`experimental_distribute_values_from_function`, placed on its device),
computes per-example Huber losses divided by the *global* batch, and all-reduces its gradients
in replica context through the strategy's cross-device ops (collective all-reduce: NCCL on GPUs,
ring on CPUs), so every replica holds the one-device gradient; each then clips it and applies
Adam to its own copy of the variables. Nothing is gathered on one device. XLA compiles the whole
call on one device; with several, XLA cannot span them, so each replica's forward and backward
pass is compiled on its own device and the all-reduce and updates run between. CNNs on CPUs skip
XLA: its CPU convolutions are slower than TensorFlow's own (docs/performance.md).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from dqn_tf.config import TrainConfig
from dqn_tf.errors import ConfigError
from dqn_tf.networks import Architecture, CompiledGreedy, initial_weights, q_values
from dqn_tf.observations import ObsSpec
from dqn_tf.optimizer import Adam, clip_by_norm
from dqn_tf.replay import FIELDS
from dqn_tf.strategy import DevicePlan

State = dict[str, list[np.ndarray]]  # "online", "target", "optimizer" of one member
COMPUTE_DTYPES = {"float32": "float32", "mixed_bfloat16": "bfloat16", "mixed_float16": "float16"}


class Learner:
    def __init__(self, configs: list[TrainConfig], obs_dim: int | ObsSpec, n_actions: int, plan: DevicePlan,
                 states: list[State] | None = None):
        """`configs` share every shape-changing field (see `config.check_population`); `obs_dim`
        is a vector's size or an ObsSpec; `states` (one per member, from `state()`) start the
        members where they were."""
        first = configs[0]
        self.configs = configs
        self.obs = obs_dim if isinstance(obs_dim, ObsSpec) else ObsSpec.vector(obs_dim)
        shape = self.obs.shape
        self.arch = Architecture(shape[0] if len(shape) == 1 else shape, n_actions, first.net_arch, first.dueling,
                                 self.obs.dtype, self.obs.scale, COMPUTE_DTYPES[first.precision])
        self.plan = plan
        self.strategy = plan.strategy
        self.replicas = plan.replicas
        if first.batch_size % self.replicas:
            raise ConfigError(
                f"batch_size = {first.batch_size}: must be divisible by the {self.replicas} "
                f"replicas of devices = {first.devices!r}"
            )
        with self.strategy.scope():
            self.online, self.target, self.optimizers = [], [], []
            for config in configs:
                weights = initial_weights(self.arch, config.seed)
                online = [tf.Variable(w, name="online") for w in weights]
                self.online.append(online)
                self.target.append([tf.Variable(w, trainable=False, name="target") for w in weights])
                self.optimizers.append(Adam(online, config.learning_rate, first.precision == "mixed_float16"))
        if states is not None:
            for k, state in enumerate(states):
                self._load_member(k, state)
        members, obs = len(configs), self.obs
        signature = [
            tf.TensorSpec([members, None, None, *obs.shape], obs.dtype),
            tf.TensorSpec([members, None, None], tf.int32),
            tf.TensorSpec([members, None, None], tf.float32),
            tf.TensorSpec([members, None, None, *obs.shape], obs.dtype),
            tf.TensorSpec([members, None, None], tf.float32),
            tf.TensorSpec([members], tf.float32),
        ]
        # XLA fuses an MLP's small ops and suits GPUs, but its CPU convolutions are slower than
        # TensorFlow's own (oneDNN): CNNs on CPUs go without.
        xla = not self.arch.convs or all("gpu" in device.lower() for device in plan.devices)
        if self.replicas == 1:
            # Calling the concrete function skips argument matching, a cost paid on every call.
            self._train = tf.function(self._train_steps, input_signature=signature, jit_compile=xla
                                      ).get_concrete_function()
        else:  # inputs are per-replica values; XLA cannot span devices, so it compiles each replica's part
            self._gradients = tf.function(self._gradients, jit_compile=xla)
            self._train = tf.function(self._train_steps)
        self._forward = tf.function(lambda weights, obs: q_values(self.arch, weights, obs), jit_compile=xla)

    def train(self, batch: dict[str, np.ndarray], target_tau: np.ndarray) -> dict[str, np.ndarray]:
        """Blend each member's target net by its `target_tau`, then one gradient step per row of
        the batch's step axis ([K, steps, batch, ...]) for every member.

        Returns per-member mean loss and mean Q-value over the steps, and whether both are finite.
        """
        # Converting up front is cheaper than letting tf.function convert numpy.
        args = [tf.constant(batch[name]) for name in FIELDS] if self.replicas == 1 else self._distribute(batch)
        loss, q_mean = self._train(*args, tf.constant(target_tau, tf.float32)).numpy()
        return {"loss": loss, "q_mean": q_mean, "finite": np.isfinite(loss) & np.isfinite(q_mean)}

    def _distribute(self, batch: dict[str, np.ndarray]) -> list[tf.distribute.DistributedValues]:
        """Replica i gets batch rows [i * share, (i + 1) * share) of every step, on its device."""
        share = self.configs[0].batch_size // self.replicas
        shards = []
        for i, device in enumerate(self.strategy.extended.worker_devices):
            with tf.device(device):
                shards.append([tf.constant(batch[name][:, :, i * share:(i + 1) * share]) for name in FIELDS])
        return [self.strategy.experimental_distribute_values_from_function(
                    lambda context, f=f: shards[context.replica_id_in_sync_group][f])
                for f in range(len(FIELDS))]

    def _train_steps(self, obs, actions, rewards, next_obs, dones, target_tau):
        self.strategy.run(self._blend_targets, args=(target_tau,))
        steps = tf.shape(self.strategy.experimental_local_results(actions)[0])[1]
        sums = tf.zeros([2, len(self.configs)])
        for i in tf.range(steps):
            stats = self.strategy.run(self._replica_step, args=(obs, actions, rewards, next_obs, dones, i))
            sums += self.strategy.experimental_local_results(stats)[0]  # all-reduced: equal on every replica
        return sums / tf.cast(steps, tf.float32)

    def _blend_targets(self, target_tau):
        """Each replica blends its own copies (identical inputs, identical results)."""
        for k in range(len(self.configs)):
            for target_var, online_var in zip(self.target[k], self.online[k]):
                target_var.assign(target_tau[k] * online_var + (1.0 - target_tau[k]) * target_var)

    def _replica_step(self, obs, actions, rewards, next_obs, dones, i):
        """One gradient step of every member on this replica's shard; returns [2, K] loss and Q."""
        online = [[tf.convert_to_tensor(v) for v in member] for member in self.online]  # this replica's copies
        target = [[tf.convert_to_tensor(v) for v in member] for member in self.target]
        scales = [opt.loss_scale.scale.read_value() if opt.loss_scale else tf.constant(1.0) for opt in self.optimizers]
        grads, stats = self._gradients(online, target, scales, obs[:, i], actions[:, i], rewards[:, i],
                                       next_obs[:, i], dones[:, i])
        if self.replicas > 1:
            grads, stats = tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, (grads, stats))
        for k, config in enumerate(self.configs):
            optimizer = self.optimizers[k]
            if optimizer.loss_scale is None:
                optimizer.apply(clip_by_norm(grads[k], config.max_grad_norm), self.online[k])
            else:  # float16: a step with overflowing gradients is skipped and lowers the scale
                ok = optimizer.loss_scale.update(grads[k])
                optimizer.apply_if(ok, clip_by_norm(grads[k], config.max_grad_norm), self.online[k])
        return stats

    def _gradients(self, online, target, scales, obs, actions, rewards, next_obs, dones):
        """This replica's share of every member's global-batch gradient (shares sum to the full
        one) and loss / mean Q; a pure function of tensors, so XLA can compile it per replica."""
        global_batch = self.configs[0].batch_size
        grads, losses, q_means = [], [], []
        for k, config in enumerate(self.configs):
            with tf.GradientTape() as tape:
                tape.watch(online[k])
                loss, q_mean = td_loss(self.arch, online[k], target[k], (obs[k], actions[k], rewards[k], next_obs[k],
                                       dones[k]), config.gamma, config.huber_delta, config.double_dqn, global_batch)
                scaled = loss if self.optimizers[k].loss_scale is None else loss * scales[k]
            member_grads = tape.gradient(scaled, online[k])
            if self.optimizers[k].loss_scale is not None:
                member_grads = [g / scales[k] for g in member_grads]
            grads.append(member_grads)
            losses.append(loss)
            q_means.append(q_mean)
        return grads, tf.stack([tf.stack(losses), tf.stack(q_means)])

    def q_values(self, obs: np.ndarray) -> np.ndarray:
        """Online Q-values [K, B, n_actions] for observations [K, B, *obs_shape] (inspection, tests)."""
        return np.stack([q_values(self.arch, online, tf.constant(o, self.obs.dtype)).numpy()
                         for online, o in zip(self.online, obs)])

    def greedy_layers(self) -> list:
        """Per member, what `policy` acts with: the (kernel, bias) pairs of the layers whose
        chain gives the greedy action (a numpy mirror), or for CNNs and pixels a CompiledGreedy."""
        if not self.arch.numpy_policy:
            return [CompiledGreedy(self.arch, online, self._forward) for online in self.online]
        return [[(online[2 * i].numpy(), online[2 * i + 1].numpy()) for i in self.arch.greedy_layer_indices()]
                for online in self.online]

    def state(self) -> list[State]:
        """Per member: weights, target weights and optimizer slots as numpy arrays."""
        return [{"online": [v.numpy() for v in self.online[k]],
                 "target": [v.numpy() for v in self.target[k]],
                 "optimizer": [v.numpy() for v in self.optimizers[k].variables]}
                for k in range(len(self.configs))]

    def subset(self, rows: list[int]) -> Learner:
        """A learner of only these members, where they are now (the others stopped)."""
        states = self.state()
        return Learner([self.configs[r] for r in rows], self.obs, self.arch.n_actions, self.plan,
                       [states[r] for r in rows])

    def _load_member(self, k: int, state: State) -> None:
        for name, variables in (("online", self.online[k]), ("target", self.target[k]),
                                ("optimizer", self.optimizers[k].variables)):
            for variable, value in zip(variables, state[name], strict=True):
                variable.assign(value)


def td_loss(arch: Architecture, online: list, target: list, batch: tuple, gamma, huber_delta, double_dqn: bool,
            global_batch: int) -> tuple[tf.Tensor, tf.Tensor]:
    """Huber TD loss and mean taken Q of a batch, summed over the batch axis and divided by the
    *global* batch (so replicas' shares sum to the mean). Works on one member ([B] actions) and on
    members stacked on a leading axis ([K, B] actions, `gamma`/`huber_delta` [K, 1]), which the
    compiled loop uses; the target side is outside the gradient."""
    obs, actions, rewards, next_obs, dones = batch
    rank = len(actions.shape)
    next_q = q_values(arch, target, next_obs)
    if double_dqn:
        best = tf.argmax(q_values(arch, online, next_obs), axis=-1, output_type=tf.int32)
        next_value = tf.gather(next_q, best, batch_dims=rank)
    else:
        next_value = tf.reduce_max(next_q, axis=-1)
    targets = tf.stop_gradient(rewards + gamma * (1.0 - dones) * next_value)
    q_taken = tf.gather(q_values(arch, online, obs), actions, batch_dims=rank)
    error = tf.abs(q_taken - targets)  # Huber: quadratic within delta, linear beyond
    per_example = tf.where(error <= huber_delta, 0.5 * tf.square(error), huber_delta * (error - 0.5 * huber_delta))
    return tf.reduce_sum(per_example, axis=-1) / global_batch, tf.reduce_sum(q_taken, axis=-1) / global_batch
