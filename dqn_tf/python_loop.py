"""The Python loop: gymnasium vector envs stepped from Python, numpy acting, a numpy replay and
one compiled train call per training phase. It runs every env, and any device plan.

Each member follows Stable-Baselines3's DQN (so rl-zoo's tuned settings mean the same here):
uniformly random actions before `learning_starts`, then epsilon-greedy; envs autoreset in the
same step, so every vector step stores `n_envs` real transitions; every `train_freq` vector steps
take `gradient_steps` gradient steps once more than `learning_starts` transitions are in; update
the target net every `target_update_interval` transitions. Member k draws from its own RNG, steps
its own envs and trains its own networks, so it does exactly what its solo run does
(`member k == train(config k)` is tested).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from dqn_tf import env_state
from dqn_tf.envs import Collector, check_spaces
from dqn_tf.evaluate import Evaluator
from dqn_tf.learner import Learner
from dqn_tf.observations import ObsSpec
from dqn_tf.policy import act
from dqn_tf.population import Population
from dqn_tf.replay import ReplayBuffer
from dqn_tf.schedules import crossings, linear_epsilon, polyak_coefficient


class PythonPopulation(Population):
    loop_name = "python"

    def build(self, saved) -> None:
        shared, configs = self.shared, self.configs
        self.collector = Collector(shared, shared.n_envs, [c.seed for c in configs])
        self.collector.episodes = self.episodes
        self.obs_shape, self.n_actions = check_spaces(shared.env_id, self.collector.envs[0])
        self.obs_spec = ObsSpec.of(self.collector.envs[0])  # shape, dtype, pixel scale, frame stack
        self.replay = ReplayBuffer(shared.buffer_size, self.obs_spec, len(configs), shared.n_envs)  # refused if too big
        self.rngs = [np.random.default_rng(c.seed) for c in configs]
        self.evaluators = [Evaluator(shared, shared.n_eval_episodes, c.seed) for c in configs]
        self.trained_at = 0
        states = self._restore_loop(*saved) if saved else None
        self.learner = Learner([configs[m] for m in self.alive], self.obs_spec, self.n_actions, self.plan, states)
        self._rows_changed()

    def advance(self, due: int) -> None:
        started = time.perf_counter()
        while self.steps < due:
            self._collect()
        self.timings["collect_seconds"] += time.perf_counter() - started
        shared = self.shared
        if crossings(self.steps - shared.n_envs, self.steps, shared.train_freq * shared.n_envs) \
                and self.steps > shared.learning_starts:
            self._train_phase()

    def _collect(self) -> None:
        shared = self.shared
        warm_up = self.steps < shared.learning_starts
        epsilon = None if warm_up else linear_epsilon(self.steps, shared.total_timesteps, *self.exploration)
        actions = act(self.policy, self.collector.obs, epsilon, self.row_rngs, uniform=warm_up)
        self.steps += shared.n_envs
        obs, rewards, next_obs, terminated = self.collector.step(actions, self.steps)
        self.replay.add(obs, actions, rewards, next_obs, terminated)

    def _train_phase(self) -> None:
        started = time.perf_counter()
        shared = self.shared
        interval = shared.target_update_interval
        tau = polyak_coefficient(self.tau, self.steps // interval - self.trained_at // interval)
        self.trained_at = self.steps
        stats = self.learner.train(self.replay.sample(self.row_rngs, (shared.gradient_steps, shared.batch_size)), tau)
        self.record_training(stats, shared.gradient_steps)
        self.policy = self.learner.greedy_layers()
        self.timings["train_seconds"] += time.perf_counter() - started

    def evaluate(self, rows: list[int]) -> list[dict[str, float]]:
        return [self.evaluators[self.alive[row]].run(self.policy[row]) for row in rows]

    def keep(self, rows: list[int]) -> None:
        self.collector.keep(rows)
        self.replay.keep(rows)
        self.learner = self.learner.subset(rows)
        self._rows_changed()

    def _rows_changed(self) -> None:
        """Per-row views of per-member settings, rebuilt when members leave."""
        configs = [self.configs[m] for m in self.alive]
        self.row_rngs = [self.rngs[m] for m in self.alive]
        self.tau = np.array([c.tau for c in configs])
        self.exploration = [np.array([getattr(c, name) for c in configs]) for name in
                            ("exploration_fraction", "exploration_initial_eps", "exploration_final_eps")]
        self.policy = self.learner.greedy_layers() if self.alive else []

    def close(self) -> None:
        self.collector.close()
        for evaluator in self.evaluators:
            evaluator.close()

    # -- checkpoints --------------------------------------------------------------------------

    def save_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        arrays = {f"replay/{name}": values for name, values in self.replay.state().items()}
        for row, member_state in enumerate(self.learner.state()):
            for name, values in member_state.items():
                arrays.update({f"learner/{row}/{name}/{i}": v for i, v in enumerate(values)})
        arrays.update({"collector/obs": self.collector.obs, "collector/returns": self.collector.returns,
                       "collector/lengths": self.collector.lengths})
        state = {
            "trained_at": self.trained_at,
            "rngs": [rng.bit_generator.state for rng in self.rngs],
            "envs": [env_state.capture(env) for env in self.collector.envs],
            "evaluator_counts": [e.count for e in self.evaluators],
        }
        return arrays, state

    def _restore_loop(self, arrays: dict[str, np.ndarray], state: dict[str, Any]) -> list[dict[str, list[np.ndarray]]]:
        """Envs, replay, RNGs where the checkpoint left them; returns the live members' learner states."""
        self.collector.keep(self.alive)  # fresh envs, reset with each member's seed ...
        for row, saved in enumerate(state["envs"]):
            if saved is None:  # ... an env we cannot snapshot starts a fresh episode (inexact)
                self.resumed_exactly = False
                continue
            env_state.restore(self.collector.envs[row], saved)
            for name in ("obs", "returns", "lengths"):
                getattr(self.collector, name)[row] = arrays[f"collector/{name}"][row]
        self.replay.keep(list(range(len(self.alive))))
        self.replay.load_state({k.removeprefix("replay/"): v for k, v in arrays.items() if k.startswith("replay/")})
        for rng, rng_state in zip(self.rngs, state["rngs"]):
            rng.bit_generator.state = rng_state
        for evaluator, count in zip(self.evaluators, state["evaluator_counts"]):
            evaluator.count = count
        self.trained_at = state["trained_at"]
        return [{name: _unpack(arrays, f"learner/{row}/{name}") for name in ("online", "target", "optimizer")}
                for row in range(len(self.alive))]


def _unpack(arrays: dict[str, np.ndarray], prefix: str) -> list[np.ndarray]:
    count = sum(1 for name in arrays if name.startswith(prefix + "/"))
    return [arrays[f"{prefix}/{i}"] for i in range(count)]
