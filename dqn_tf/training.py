"""`train_population(configs, on_event)`: K DQN agents side by side in one process and one
compiled train call; `train(config, on_event)` is the population of one.

Each member follows Stable-Baselines3's DQN step for step (so rl-zoo's tuned settings mean the
same here): act epsilon-greedily, store the real transitions, every `train_freq` vector steps
take `gradient_steps` gradient steps once `learning_starts` transitions are in, update the
target net every `target_update_interval` transitions, evaluate every `eval_freq` transitions.
Every member counts its own transitions (episode ends, whose reset steps are skipped, differ),
and its epsilon, target updates, evaluations, progress and budget follow its own counter.
Training phases are shared, because one compiled call trains every member: a phase starts when
the population's furthest member reaches the next `train_freq` boundary, so a member may train
a few transitions before a separate run would. With one member that is exactly SB3's schedule.

A member stops alone: when `on_event` answers one of its events with a truthy value, when it
diverges (its result says so; `train` raises TrainingDiverged), or when its budget is spent.
Its envs then run on without counting and its weights receive no more updates.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from dqn_tf import checkpoint
from dqn_tf.config import ConfigError, TrainConfig, check_population, parse_config
from dqn_tf.envs import Collector, check_spaces, make_vector_env
from dqn_tf.evaluate import Evaluator
from dqn_tf.learner import Learner
from dqn_tf.policy import GreedyPolicy
from dqn_tf.replay import ReplayBuffer
from dqn_tf.result import EventCallback, TrainingDiverged, TrainResult
from dqn_tf.schedules import crossings, linear_epsilon, polyak_coefficient
from dqn_tf.strategy import plan_devices

RESUMABLE_DIFFERENCES = {"devices"}  # a run may resume on other hardware, nothing else changes
NEVER = np.iinfo(np.int64).max


def train(
    config: TrainConfig | dict[str, Any],
    on_event: EventCallback | None = None,
    checkpoint_dir: str | Path | None = None,
) -> TrainResult:
    """Train one agent; `on_event` gets eval/progress dicts and may return truthy to stop."""
    (result,) = train_population([config], on_event, checkpoint_dir)
    if result.diverged:
        raise TrainingDiverged(result.stop_reason)
    return result


def train_population(
    configs: list[TrainConfig | dict[str, Any]],
    on_event: EventCallback | None = None,
    checkpoint_dir: str | Path | None = None,
) -> list[TrainResult]:
    """Train one agent per config, side by side; member k's result is at index k.

    Configs may differ in seed and continuous hyperparameters (learning_rate, gamma, tau,
    exploration_*, max_grad_norm, huber_delta) but must share every shape-changing field (ConfigError
    otherwise). Events carry `"member": k`; a truthy answer stops only that member.
    """
    started = time.perf_counter()
    parsed = [parse_config(config) for config in configs]
    check_population(parsed)
    run = _Population(parsed, on_event, Path(checkpoint_dir) if checkpoint_dir else None)
    run.timings["setup_seconds"] = time.perf_counter() - started
    try:
        run.loop()
    finally:
        run.close()
    return run.results(time.perf_counter() - started)


class _Population:
    """The mutable state of one population's training and the steps that advance it."""

    def __init__(self, configs: list[TrainConfig], on_event: EventCallback | None, folder: Path | None):
        self.configs = configs
        self.shared = first = configs[0]  # every shape-changing field is the same for all
        self.members = members = len(configs)
        self.on_event = on_event or (lambda event: None)
        self.folder = folder
        env = make_vector_env(first.env_id, members * first.n_envs)
        obs_dim, n_actions = check_spaces(first.env_id, env)
        self.plan = plan_devices(first.devices)
        self.learner = Learner(configs, obs_dim, n_actions, self.plan)
        self.replay = ReplayBuffer(first.buffer_size, obs_dim, members)
        self.rngs = [np.random.default_rng(c.seed) for c in configs]
        self.collector = Collector(env, [c.seed for c in configs])
        self.evaluators = [Evaluator(first.env_id, first.n_eval_episodes, c.seed) for c in configs]
        self.policy = GreedyPolicy(self.learner.greedy_layers())
        self.tau = np.array([c.tau for c in configs])
        self.exploration = [
            np.array([getattr(c, name) for c in configs])
            for name in ("exploration_fraction", "exploration_initial_eps", "exploration_final_eps")
        ]
        self.steps = np.zeros(members, dtype=np.int64)
        self.gradient_steps = np.zeros(members, dtype=np.int64)
        self.trained_at = np.zeros(members, dtype=np.int64)  # step of each member's last train call
        self.last_loss = np.full(members, np.nan)  # of each member's last train call
        self.last_q_mean = np.full(members, np.nan)
        self.phases_done = 0
        self.running = np.ones(members, dtype=bool)
        self.diverged = np.zeros(members, dtype=bool)
        self.stop_reasons: list[str | None] = [None] * members
        self.evals: list[list[dict[str, Any]]] = [[] for _ in configs]
        self.resumed_from_step: list[int | None] = [None] * members
        self.session_start = np.zeros(members, dtype=np.int64)
        self.timings = {"collect_seconds": 0.0, "train_seconds": 0.0, "eval_seconds": 0.0}
        if folder is not None:
            self._restore()

    # -- the loop -----------------------------------------------------------------------------

    def loop(self) -> None:
        shared, members = self.shared, self.members
        n_envs, total = shared.n_envs, shared.total_timesteps
        self.train_every = train_every = shared.train_freq * n_envs
        self.progress_every = max(total // 100, 1)
        self.exploration_ends = np.multiply(self.exploration[0], total)
        self._schedule()
        self.loop_started = time.perf_counter()
        collect_started = time.perf_counter()
        while self.running.any():
            # Per-step numpy calls cost ~1 us each and dominate a cheap env step: do few.
            if self.exploring:
                self.epsilon = linear_epsilon(self.steps, total, *self.exploration).tolist()
            obs = self.collector.obs.reshape(members, n_envs, -1)
            actions = self.policy.act(obs, self.epsilon, self.rngs).reshape(-1)
            obs, actions, rewards, next_obs, terminated, kept = self.collector.step(
                actions, self.steps, self.counting
            )
            kept, all_kept = kept.reshape(members, n_envs), self.collector.all_kept
            self.replay.add(
                kept, obs.reshape(members, n_envs, -1), actions.reshape(members, n_envs),
                rewards.reshape(members, n_envs), next_obs.reshape(members, n_envs, -1),
                terminated.reshape(members, n_envs), all_kept,
            )
            if all_kept:  # every member advanced n_envs: plain int bookkeeping
                self.steps += n_envs
                self.slack -= n_envs
                if self.slack > 0:
                    continue
                before = self.steps - n_envs
            else:
                before, self.steps = self.steps, self.steps + kept.sum(axis=1)
                if not (self.steps >= self.next_due).any():
                    self.slack = int((self.next_due - self.steps).min())
                    continue
            self.timings["collect_seconds"] += time.perf_counter() - collect_started
            counting = self.running.copy()
            phases = int(self.steps[counting].max()) // train_every - self.phases_done
            if phases > 0:  # the furthest member reached a train_freq boundary
                self.phases_done += phases
                active = counting & (self.steps > shared.learning_starts)
                if active.any():
                    self._train_phase(phases * shared.gradient_steps, active)
            self._member_events(before, counting)
            self._schedule()
            collect_started = time.perf_counter()
        self.timings["collect_seconds"] += time.perf_counter() - collect_started

    def _member_events(self, before: np.ndarray, counting: np.ndarray) -> None:
        """Progress, evaluation and the end of each member that collected this step."""
        eval_freq = self.shared.eval_freq
        report = crossings(before, self.steps, self.progress_every) > 0
        evaluate = crossings(before, self.steps, eval_freq) > 0 if eval_freq else np.zeros_like(report)
        for k in np.flatnonzero(counting):
            if report[k] and self.stop_reasons[k] is None:
                self._emit(k, self._progress_event(k))
            if evaluate[k] and self.stop_reasons[k] is None:
                self._evaluate(k)
            if self.stop_reasons[k] is not None or self.steps[k] >= self.shared.total_timesteps:
                self._finish(k)

    def _schedule(self) -> None:
        """What the next steps need: the step at which each member next has something to do
        besides collecting (a training phase, progress, evaluation, its end), who collects,
        and whether epsilon still changes."""
        every = [self.progress_every] + ([self.shared.eval_freq] if self.shared.eval_freq else [])
        due = np.full(self.members, self.shared.total_timesteps, dtype=np.int64)
        for interval in every:
            due = np.minimum(due, (self.steps // interval + 1) * interval)
        due = np.minimum(due, (self.phases_done + 1) * self.train_every)
        self.next_due = np.where(self.running, due, NEVER)
        self.slack = int((self.next_due - self.steps).min())  # steps until the first is due
        self.counting = None if self.running.all() else self.running.copy()
        self.exploring = bool((self.steps < self.exploration_ends).any())
        self.epsilon = linear_epsilon(self.steps, self.shared.total_timesteps, *self.exploration).tolist()

    def _train_phase(self, steps: int, active: np.ndarray) -> None:
        started = time.perf_counter()
        interval = self.shared.target_update_interval
        tau = polyak_coefficient(self.tau, self.steps // interval - self.trained_at // interval)
        self.trained_at = np.where(active, self.steps, self.trained_at)
        batch = self.replay.sample(self.rngs, (steps, self.shared.batch_size), active)
        stats = self.learner.train(batch, tau, active)
        self.last_loss = np.where(active, stats["loss"], self.last_loss)
        self.last_q_mean = np.where(active, stats["q_mean"], self.last_q_mean)
        for k in np.flatnonzero(active & ~stats["finite"]):
            self.diverged[k] = True
            self.stop_reasons[k] = (
                f"diverged: loss {stats['loss'][k]} / mean Q {stats['q_mean'][k]} "
                f"at env step {self.steps[k]}"
            )
        self.gradient_steps += np.where(active & stats["finite"], steps, 0)
        self.policy = GreedyPolicy(self.learner.greedy_layers())
        self.timings["train_seconds"] += time.perf_counter() - started

    def _finish(self, k: int) -> None:
        """Member k stops collecting; it ends on an evaluation of its final policy."""
        self.running[k] = False
        if self.diverged[k]:
            return
        evals = self.evals[k]
        if not evals or (evals[-1]["step"] != self.steps[k] and self.stop_reasons[k] is None):
            self._evaluate(k)

    def _evaluate(self, k: int) -> None:
        started = time.perf_counter()
        results = self.evaluators[k].run(self.policy.member(k))
        event = {"event": "eval", "member": k, "step": int(self.steps[k]), **results}
        self.evals[k].append(event)
        self.timings["eval_seconds"] += time.perf_counter() - started
        if self.folder is not None:
            self._save()
        self._emit(k, event)

    def _progress_event(self, k: int) -> dict[str, Any]:
        elapsed = time.perf_counter() - self.loop_started
        return {
            "event": "progress",
            "member": k,
            "step": int(self.steps[k]),
            "total_timesteps": self.shared.total_timesteps,
            "steps_per_second": int(self.steps[k] - self.session_start[k]) / max(elapsed, 1e-9),
            "episodes": len(self.collector.tracker.episodes[k]),
            "loss": _number(self.last_loss[k]),
            "q_mean": _number(self.last_q_mean[k]),
        }

    def _emit(self, k: int, event: dict[str, Any]) -> None:
        answer = self.on_event(dict(event))
        if answer and self.stop_reasons[k] is None:
            self.stop_reasons[k] = answer if isinstance(answer, str) else "stopped by on_event"

    # -- checkpoints --------------------------------------------------------------------------

    def _save(self) -> None:
        arrays = {f"replay/{k}": v for k, v in self.replay.state().items()}
        for name, values in self.learner.state().items():
            arrays.update(checkpoint.pack(name, values))
        state = {
            "configs": [c.to_dict() for c in self.configs],
            "steps": self.steps,
            "gradient_steps": self.gradient_steps,
            "trained_at": self.trained_at,
            "last_stats": (self.last_loss, self.last_q_mean),
            "phases_done": self.phases_done,
            "running": self.running,
            "diverged": self.diverged,
            "stop_reasons": self.stop_reasons,
            "rngs": [rng.bit_generator.state for rng in self.rngs],
            "collector": self.collector,
            "evaluator_counts": [e.count for e in self.evaluators],
            "evals": self.evals,
        }
        checkpoint.save(self.folder, int(self.steps.max()), arrays, state)

    def _restore(self) -> None:
        saved = checkpoint.load(self.folder)
        if saved is None:
            return
        arrays, state = saved
        self._check_same_configs(state["configs"])
        self.learner.load_state({name: checkpoint.unpack(name, arrays) for name in ("online", "target", "optimizer")})
        self.replay.load_state({k.removeprefix("replay/"): v for k, v in arrays.items() if k.startswith("replay/")})
        self.collector.env.close()
        self.collector = state["collector"]
        for rng, rng_state in zip(self.rngs, state["rngs"]):
            rng.bit_generator.state = rng_state
        for evaluator, count in zip(self.evaluators, state["evaluator_counts"]):
            evaluator.count = count
        self.steps, self.session_start = state["steps"].copy(), state["steps"].copy()
        self.resumed_from_step = [int(s) for s in self.steps]
        self.gradient_steps, self.trained_at = state["gradient_steps"], state["trained_at"]
        self.last_loss, self.last_q_mean = state["last_stats"]
        self.phases_done, self.running, self.diverged = state["phases_done"], state["running"], state["diverged"]
        self.stop_reasons, self.evals = state["stop_reasons"], state["evals"]
        self.policy = GreedyPolicy(self.learner.greedy_layers())

    def _check_same_configs(self, saved: list[dict[str, Any]]) -> None:
        if len(saved) != self.members:
            raise ConfigError(
                f"checkpoint_dir = '{self.folder}' holds a population of {len(saved)} member(s), "
                f"now {self.members}; use a new folder or the same configs"
            )
        changed = [
            ("" if self.members == 1 else f"member {k} ")
            + f"{key} (checkpoint {old[key]!r}, now {value!r})"
            for k, (old, config) in enumerate(zip(saved, self.configs))
            for key, value in config.to_dict().items()
            if key not in RESUMABLE_DIFFERENCES and old.get(key) != value
        ]
        if changed:
            raise ConfigError(
                f"checkpoint_dir = '{self.folder}' holds a run with another config: "
                + ", ".join(changed) + "; use a new folder or the same config"
            )

    # -- the outcome --------------------------------------------------------------------------

    def close(self) -> None:
        self.collector.env.close()
        for evaluator in self.evaluators:
            evaluator.close()

    def results(self, wall_seconds: float) -> list[TrainResult]:
        return [self._result(k, wall_seconds) for k in range(self.members)]

    def _result(self, k: int, wall_seconds: float) -> TrainResult:
        final = self.evals[k][-1] if self.evals[k] else {}
        steps_this_session = int(self.steps[k] - self.session_start[k])
        return TrainResult(
            config=self.configs[k].to_dict(),
            final_eval_mean=final.get("mean_return"),
            final_eval_std=final.get("std_return"),
            evals=[{key: v for key, v in e.items() if key not in ("event", "member")} for e in self.evals[k]],
            episodes=list(self.collector.tracker.episodes[k]),
            env_steps=int(self.steps[k]),
            gradient_steps=int(self.gradient_steps[k]),
            wall_seconds=wall_seconds,
            steps_per_second=steps_this_session / max(wall_seconds, 1e-9),
            replicas=self.plan.replicas,
            devices=list(self.plan.devices),
            stopped_early=self.stop_reasons[k] is not None,
            stop_reason=self.stop_reasons[k],
            resumed_from_step=self.resumed_from_step[k],
            timings={name: round(value, 4) for name, value in self.timings.items()},
            member=k,
            diverged=bool(self.diverged[k]),
        )


def _number(value: float) -> float | None:
    """A plain float for events, None for "not trained yet" (NaN)."""
    return None if np.isnan(value) else float(value)
