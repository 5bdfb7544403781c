"""The compiled loop: env steps, epsilon-greedy acting, replay writes, gradient steps and target
updates of every member, one XLA program per chunk (up to the next progress report, evaluation
or checkpoint); greedy evaluation is a second program.

Why: stepping gymnasium from Python and dispatching each train call cost far more than a small
network's arithmetic (docs/performance.md); inside one program both vanish (the PureJaxRL / gymnax idea, in TensorFlow). It needs
an in-graph env (`dqn_tf.graph_envs`, `dqn_tf.minatar_graph`) and one device. Observations are
kept as the env gives them (MinAtar's uint8 images go to the replay and the CNN as uint8).

Members are stacked on a leading axis ([K, ...] variables, batched matmuls), and member k of a
population is its solo run on this path too (tested): XLA's batched matmul gives member k the
bits of its own plain one, a stacked bias's gradient is summed as a matmul
(`networks.add_stacked_bias`), and env arrays are never one element wide (`two_wide`). Randomness is a counter-based hash (`counter_rng`) of (member
seed, purpose, step, index): no RNG state to carry or checkpoint, and a member's draws never
depend on others.
The schedule is the Python loop's (SB3's): uniform actions before `learning_starts`, training
every `train_freq` vector steps once more than `learning_starts` transitions are in, lazy Polyak
target updates, same-step autoreset with truncated episodes bootstrapping from their final obs.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import tensorflow as tf

from dqn_tf.config import POPULATION_SHARED_FIELDS, TrainConfig
from dqn_tf.counter_rng import ACT, EVAL, EVAL_STEP, RESET, SAMPLE, STEP, member_keys, uniform
from dqn_tf.graph_envs import GraphEnv
from dqn_tf.host_memory import check_replay_fits
from dqn_tf.learner import td_loss
from dqn_tf.networks import Architecture, initial_weights, q_values
from dqn_tf.observations import ObsSpec
from dqn_tf.optimizer import adam_rate, adam_update


def two_wide(values, n: int):
    """Env inputs [K, n, ...] made two envs wide when n is 1, the second a ghost of the first.

    XLA folds and reorders constants differently in arrays of one element (CartPole's
    `0.1 * cos**2 / 1.1` becomes `cos**2 * 0.0909...`) and fuses a one-env loop differently, so
    a solo run of one env would part in the last bit from the same seed as a population member,
    and RL amplifies that into another run. At two or more envs a member's bits do not depend on
    how many share its program; the ghost is stepped, never observed."""
    return values if values is None or n > 1 else tf.concat([values, values], axis=1)


def _per_member(values: tf.Tensor, like: tf.Tensor) -> tf.Tensor:
    """[K] -> [K, 1, ...] broadcasting against `like` [K, ...]."""
    return tf.reshape(values, [-1] + [1] * (like.shape.rank - 1))


PROGRAMS_KEPT = 2  # compiled programs a process keeps for its next runs (each holds its replay)
_programs: OrderedDict[tuple, Program] = OrderedDict()


def program_for(configs: list[TrainConfig], env: GraphEnv, device: str) -> Program:
    """A program for these configs, set to their start: one this process already compiled for
    the same shape (a warm trial process pays XLA's compile once per shape), else a new one."""
    shared = configs[0]
    # obs and next obs stored whole, as a vector replay stores them
    check_replay_fits(shared.buffer_size, ObsSpec((env.obs_dim,), env.obs_dtype), len(configs), shared.n_envs)
    key = (len(configs), device, *(repr(getattr(shared, name)) for name in POPULATION_SHARED_FIELDS))  # env_kwargs: a dict
    program = _programs.pop(key, None) or Program(configs, env, device)
    _programs[key] = program
    while len(_programs) > PROGRAMS_KEPT:
        _programs.popitem(last=False)
    program.start(configs)
    return program


class Program:
    """Every member's env, replay, networks, Adam and hyperparameters as [K, ...] variables on
    one device, and the two compiled programs that advance and evaluate them."""

    def __init__(self, configs: list[TrainConfig], env: GraphEnv, device: str):
        shared = configs[0]
        self.configs, self.env, self.device = configs, env, device
        net_arch = shared.net_arch if isinstance(shared.net_arch, str) else tuple(shared.net_arch)
        obs_shape = env.obs_shape if len(env.obs_shape) > 1 else env.obs_dim
        self.arch = Architecture(obs_shape, env.n_actions, net_arch, shared.dueling, env.obs_dtype)
        k, n, cap = len(configs), shared.n_envs, shared.buffer_size
        self.members, self.n_envs = k, n
        # the longest chunk: progress reports come every total // 100 steps
        self.max_chunk = -(-max(shared.total_timesteps // 100, 1) // n) + 1
        shapes = [w.shape if w.ndim >= 2 else (1, w.shape[0]) for w in initial_weights(self.arch, 0)]
        with tf.device(device):
            v = lambda shape, dtype=tf.float32: tf.Variable(tf.zeros([k, *shape], dtype), trainable=False)
            self.keys = v([], tf.uint32)
            self.learning_rate, self.tau, self.max_grad_norm = v([]), v([]), v([])
            self.gamma, self.huber_delta = v([1]), v([1])
            self.exploration = [v([], tf.float64) for _ in range(3)]
            # at least two envs wide: `two_wide`
            self.state, self.obs = v([max(n, 2), env.state_dim], env.state_dtype), v([n, *env.obs_shape], env.obs_dtype)
            self.returns, self.lengths = v([n]), v([n], tf.int32)
            self.replay = {"obs": v([cap, *env.obs_shape], env.obs_dtype),
                           "next_obs": v([cap, *env.obs_shape], env.obs_dtype),
                           "actions": v([cap], tf.int32), "rewards": v([cap]), "dones": v([cap])}
            self.pos, self.size = tf.Variable(0, trainable=False), tf.Variable(0, trainable=False)
            self.steps = tf.Variable(0, dtype=tf.int64, trainable=False)
            self.trained_at = tf.Variable(0, dtype=tf.int64, trainable=False)
            self.online, self.target = [v(shape) for shape in shapes], [v(shape) for shape in shapes]
            self.adam_m, self.adam_v = [v(shape) for shape in shapes], [v(shape) for shape in shapes]
            self.adam_steps, self.loss, self.q_mean = v([]), v([]), v([])
            self.gradient_steps, self.diverged_at = v([], tf.int64), v([], tf.int64)
        self._advance = tf.function(self._advance_graph, jit_compile=True,
                                    input_signature=[tf.TensorSpec([], tf.int64)]).get_concrete_function()
        self._evaluate = tf.function(self._evaluate_graph, jit_compile=True,
                                     input_signature=[tf.TensorSpec([], tf.int64)]).get_concrete_function()

    def start(self, configs: list[TrainConfig]) -> None:
        """Every member at step 0 of its run: its seed's weights and env starts, its settings."""
        self.configs = configs
        per_member = lambda name: np.array([getattr(c, name) for c in configs])
        self.keys.assign(member_keys(configs))
        for variable, name in ((self.learning_rate, "learning_rate"), (self.tau, "tau"),
                               (self.max_grad_norm, "max_grad_norm")):
            variable.assign(per_member(name).astype(np.float32))
        self.gamma.assign(per_member("gamma")[:, None].astype(np.float32))
        self.huber_delta.assign(per_member("huber_delta")[:, None].astype(np.float32))
        for variable, name in zip(self.exploration, ("exploration_fraction", "exploration_initial_eps",
                                                     "exploration_final_eps")):
            variable.assign(per_member(name))
        weights = [initial_weights(self.arch, c.seed) for c in configs]
        for i, (online, target, m, v) in enumerate(zip(self.online, self.target, self.adam_m, self.adam_v)):
            stacked = np.stack([w[i] for w in weights]).reshape(online.shape)  # biases [K, 1, out]
            online.assign(stacked)
            target.assign(stacked)
            m.assign(tf.zeros_like(m))
            v.assign(tf.zeros_like(v))
        env, n = self.env, self.n_envs
        initial = env.initial_state(two_wide(uniform(self.keys, RESET, [-1], [n, env.reset_draws], tf.float64), n))
        self.state.assign(initial)
        self.obs.assign(env.observe(initial)[:, :n])
        for variable in (self.returns, self.lengths, self.pos, self.size, self.steps, self.trained_at,
                         self.adam_steps, self.gradient_steps):
            variable.assign(tf.zeros_like(variable))
        self.loss.assign(tf.fill(self.loss.shape, np.nan))
        self.q_mean.assign(tf.fill(self.q_mean.shape, np.nan))
        self.diverged_at.assign(tf.fill(self.diverged_at.shape, tf.constant(-1, tf.int64)))

    # -- the programs -------------------------------------------------------------------------

    def _advance_graph(self, until):
        """Step every member from `steps` to `until`; per vector step, which envs ended an
        episode and its return and length ([max_chunk, K, n]); the iteration count.

        Segments of collection end at train boundaries, where a training phase runs as while
        loops whose trip counts are 0 when no training is due. Not `tf.cond`: XLA copies every
        weight, moment and target that a conditional passes through, and a `cond` inside the
        per-step loop is dear on CPU (docs/performance.md).
        """
        shared, n = self.configs[0], self.n_envs
        every = shared.train_freq * n
        shape = [self.max_chunk, self.members, n]
        log = (tf.zeros(shape, tf.bool), tf.zeros(shape), tf.zeros(shape, tf.int32))

        def collect(t, done_log, return_log, length_log):
            done, returns, lengths = self._env_step()
            at = [[t]]
            return (t + 1, tf.tensor_scatter_nd_update(done_log, at, done[None]),
                    tf.tensor_scatter_nd_update(return_log, at, returns[None]),
                    tf.tensor_scatter_nd_update(length_log, at, lengths[None]))

        def segment(t, *log):
            boundary = tf.minimum((self.steps // every + 1) * every, until)
            t, *log = tf.while_loop(lambda t, *_: self.steps < boundary, collect, [t, *log],
                                    maximum_iterations=self.max_chunk)
            steps = self.steps.read_value()
            self._train_phase((steps % every < n) & (steps > shared.learning_starts))
            return t, *log

        t, *log = tf.while_loop(lambda t, *_: self.steps < until, segment, [tf.constant(0), *log])
        return t, *log

    def _env_step(self):
        shared, env, n = self.configs[0], self.env, self.n_envs
        steps = self.steps.read_value()
        draws = uniform(self.keys, ACT, [steps], [n, 2])
        random_actions = tf.minimum(tf.cast(draws[..., 1] * env.n_actions, tf.int32), env.n_actions - 1)
        explore = tf.logical_or(steps < shared.learning_starts, draws[..., 0] < self._epsilon(steps)[:, None])
        actions = tf.where(explore, random_actions, self._greedy(self.obs))
        next_state, rewards, terminated = env.step(self.state, two_wide(actions, n),
                                                   two_wide(self._step_draws(STEP, [steps], n), n))
        rewards, terminated = rewards[:, :n], terminated[:, :n]
        lengths = self.lengths + 1
        returns = self.returns + rewards
        done = terminated | (lengths >= env.max_episode_steps)
        final_obs = env.observe(next_state)[:, :n]
        fresh = env.restart(next_state, two_wide(uniform(self.keys, RESET, [steps], [n, env.reset_draws], tf.float64), n))
        self.state.assign(tf.where(two_wide(done, n)[..., None], fresh, next_state))
        obs = self.obs.read_value()
        self.obs.assign(env.observe(self.state)[:, :n])
        self._store(obs, actions, rewards, final_obs, tf.cast(terminated, tf.float32))
        self.returns.assign(tf.where(done, 0.0, returns))
        self.lengths.assign(tf.where(done, 0, lengths))
        self.steps.assign_add(n)
        return done, returns, lengths

    def _step_draws(self, stream: int, counters: list, n: int) -> tf.Tensor | None:
        """The env's uniforms for one step of n envs per member, or None if it draws none."""
        draws = self.env.step_draws
        return uniform(self.keys, stream, counters, [n, draws]) if draws else None

    def _epsilon(self, steps):
        """`schedules.linear_epsilon`, in the graph: one epsilon per member, as float32."""
        fraction, initial, final = self.exploration
        span = fraction * self.configs[0].total_timesteps
        progress = tf.where(span > 0, tf.cast(steps, tf.float64) / tf.maximum(span, 1e-300), 1.0)
        return tf.cast(tf.where(progress >= 1, final, initial + progress * (final - initial)), tf.float32)

    def _greedy(self, obs):
        """Greedy actions [K, rows] for observations [K, rows, ...]. A single row is doubled:
        XLA's CPU matrix-vector path is much slower than its matrix-matrix one on two rows."""
        rows = obs.shape[1]
        if rows == 1:
            obs = tf.concat([obs, obs], axis=1)
        actions = tf.argmax(q_values(self.arch, self.online, obs), axis=-1, output_type=tf.int32)
        return actions[:, :rows]

    def _store(self, obs, actions, rewards, next_obs, dones):
        cap, n = self.configs[0].buffer_size, self.n_envs
        where = (self.pos + tf.range(n)) % cap
        if n > cap:  # only the newest rows survive
            where, (obs, actions, rewards, next_obs, dones) = where[-cap:], (
                x[:, -cap:] for x in (obs, actions, rewards, next_obs, dones))
        rows = tf.shape(where)[0]
        index = tf.stack([tf.repeat(tf.range(self.members), rows), tf.tile(where, [self.members])], axis=1)
        for name, values in zip(("obs", "actions", "rewards", "next_obs", "dones"),
                                (obs, actions, rewards, next_obs, dones)):
            flat = tf.reshape(values, tf.concat([[-1], tf.shape(values)[2:]], axis=0))
            self.replay[name].scatter_nd_update(index, flat)
        self.pos.assign((self.pos + n) % cap)
        self.size.assign(tf.minimum(self.size + n, cap))

    def _train_phase(self, due):
        """Where `due`: move the targets (lazy Polyak: every update since the last phase at
        once), then `gradient_steps` steps; else nothing. Both are while loops with a trip count
        of 0 or more, so nothing is copied when no training is due (see `_advance_graph`)."""
        shared = self.configs[0]
        steps, interval = self.steps.read_value(), shared.target_update_interval
        updates = tf.cast(steps // interval - self.trained_at // interval, tf.float32)
        blend = tf.where(updates > 0, 1.0 - tf.pow(1.0 - self.tau, updates), 0.0)

        def move_targets(i):
            for target, online in zip(self.target, self.online):
                w = _per_member(blend, online)
                target.assign(w * online + (1.0 - w) * target)
            return (i + 1,)

        tf.while_loop(lambda i: i < tf.cast(due & tf.reduce_any(updates > 0), tf.int32), move_targets,
                      [tf.constant(0)])
        self.trained_at.assign(tf.where(due, steps, self.trained_at))

        def one_step(g, sums):
            return g + 1, sums + self._gradient_step(steps, g)

        count = tf.where(due, shared.gradient_steps, 0)
        _, sums = tf.while_loop(lambda g, _: g < count, one_step, [tf.constant(0), tf.zeros([2, self.members])])
        loss, q_mean = sums[0] / shared.gradient_steps, sums[1] / shared.gradient_steps
        finite = tf.math.is_finite(loss) & tf.math.is_finite(q_mean)
        self.loss.assign(tf.where(due, loss, self.loss))
        self.q_mean.assign(tf.where(due, q_mean, self.q_mean))
        self.gradient_steps.assign_add(tf.where(due & finite, tf.constant(shared.gradient_steps, tf.int64), 0))
        self.diverged_at.assign(tf.where(due & ~finite & (self.diverged_at < 0), steps, self.diverged_at))

    def _gradient_step(self, steps, g):
        batch_size = self.configs[0].batch_size
        index = tf.cast(uniform(self.keys, SAMPLE, [steps, g], [batch_size]) * tf.cast(self.size, tf.float32),
                        tf.int32)
        index = tf.minimum(index, self.size - 1)
        batch = tuple(tf.gather(self.replay[name], index, batch_dims=1)
                      for name in ("obs", "actions", "rewards", "next_obs", "dones"))
        online = [variable.read_value() for variable in self.online]
        with tf.GradientTape() as tape:  # on values: variables captured this deep in loops lose their gradient
            tape.watch(online)
            loss, q_mean = td_loss(self.arch, online, self.target, batch, self.gamma, self.huber_delta,
                                   self.configs[0].double_dqn, batch_size)
            total = tf.reduce_sum(loss)  # members are independent: d total / d member k = d loss_k
        grads = tape.gradient(total, online)
        self._adam(grads)
        return tf.stack([loss, q_mean])

    def _adam(self, grads):
        """`optimizer.clip_by_norm` + Adam's update, each member with its own norm and rate."""
        norm = tf.sqrt(tf.add_n([tf.reduce_sum(tf.square(g), axis=list(range(1, g.shape.rank))) for g in grads]))
        scale = self.max_grad_norm / tf.maximum(norm, self.max_grad_norm)
        rate = adam_rate(self.learning_rate, self.adam_steps.assign_add(tf.ones([self.members])))
        for grad, variable, m, v in zip(grads, self.online, self.adam_m, self.adam_v):
            adam_update([grad * _per_member(scale, grad)], [variable], [m], [v], _per_member(rate, grad))

    def _evaluate_graph(self, count):
        """Greedy returns [K, n_eval_episodes]: one episode per env, fresh starts per count."""
        env, episodes = self.env, self.configs[0].n_eval_episodes
        state = env.initial_state(two_wide(uniform(self.keys, EVAL, [count], [episodes, env.reset_draws], tf.float64),
                                           episodes))
        running = tf.ones([self.members, episodes], tf.bool)

        def body(t, state, running, returns):
            draws = self._step_draws(EVAL_STEP, [count, t], episodes)
            actions = self._greedy(env.observe(state)[:, :episodes])
            state, rewards, terminated = env.step(state, two_wide(actions, episodes), two_wide(draws, episodes))
            rewards, terminated = rewards[:, :episodes], terminated[:, :episodes]
            returns += tf.where(running, rewards, 0.0)
            return t + 1, state, running & ~terminated & (t + 1 < env.max_episode_steps), returns

        *_, returns = tf.while_loop(lambda t, s, running, r: tf.reduce_any(running), body,
                                    [tf.constant(0), state, running, tf.zeros([self.members, episodes])])
        return returns

    # -- the host's side ----------------------------------------------------------------------

    def advance(self, until: int) -> list[tuple[int, int, int, float, int]]:
        """Run to `until`; the episodes that ended, as (member row, env, vector step index,
        return, length) in the order the Python loop records them."""
        iterations, done, returns, lengths = self._advance(tf.constant(until, tf.int64))
        iterations = int(iterations)
        done, returns, lengths = (x.numpy()[:iterations] for x in (done, returns, lengths))
        return [(int(r), int(c), int(t), float(returns[t, r, c]), int(lengths[t, r, c]))
                for t, r, c in zip(*np.nonzero(done))]

    def evaluate(self, count: int) -> np.ndarray:
        return self._evaluate(tf.constant(count, tf.int64)).numpy()

    def variables(self) -> dict[str, tf.Variable]:
        """Everything that changes while training, by checkpoint name."""
        named = {"env/state": self.state, "env/obs": self.obs, "env/returns": self.returns,
                 "env/lengths": self.lengths, "replay/pos": self.pos, "replay/size": self.size,
                 "steps": self.steps, "trained_at": self.trained_at, "adam/steps": self.adam_steps,
                 "stats/loss": self.loss, "stats/q_mean": self.q_mean,
                 "stats/gradient_steps": self.gradient_steps, "stats/diverged_at": self.diverged_at}
        named.update({f"replay/{name}": variable for name, variable in self.replay.items()})
        for group, variables in (("online", self.online), ("target", self.target), ("adam/m", self.adam_m),
                                 ("adam/v", self.adam_v)):
            named.update({f"{group}/{i}": variable for i, variable in enumerate(variables)})
        return named

    def arrays(self) -> dict[str, np.ndarray]:
        """The state as numpy (the replay trimmed to its filled part), for checkpoints."""
        size = int(self.size)
        return {name: (variable[:, :size] if name.startswith("replay/") and variable.shape.rank > 1
                       else variable).numpy() for name, variable in self.variables().items()}

    def load(self, arrays: dict[str, np.ndarray]) -> None:
        size = int(arrays["replay/size"])
        for name, variable in self.variables().items():
            if name.startswith("replay/") and variable.shape.rank > 1:
                variable[:, :size].assign(arrays[name])
            elif name == "env/state" and arrays[name].shape[1] < variable.shape[1]:  # saved before `two_wide`
                variable.assign(np.concatenate([arrays[name]] * 2, axis=1))
            else:
                variable.assign(arrays[name])

    def subset(self, rows: list[int]) -> Program:
        """A program of only these members, where they are now (the others stopped)."""
        program = program_for([self.configs[r] for r in rows], self.env, self.device)
        targets = program.variables()
        for name, variable in self.variables().items():
            value = variable.numpy()
            targets[name].assign(value[rows] if value.ndim else value)
        return program
