"""`train(config, on_event)`: one DQN run, from config to TrainResult.

The loop follows Stable-Baselines3's DQN step for step (so rl-zoo's tuned settings mean the same
here): act epsilon-greedily, store the real transitions, every `train_freq` vector steps take
`gradient_steps` gradient steps once `learning_starts` transitions are in, update the target net
every `target_update_interval` transitions, evaluate every `eval_freq` transitions.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from dqn_tf import checkpoint
from dqn_tf.config import ConfigError, TrainConfig, parse_config
from dqn_tf.envs import Collector, check_spaces, make_vector_env
from dqn_tf.evaluate import Evaluator
from dqn_tf.learner import Learner
from dqn_tf.policy import GreedyPolicy
from dqn_tf.replay import ReplayBuffer
from dqn_tf.result import EventCallback, TrainingDiverged, TrainResult
from dqn_tf.schedules import crossings, linear_epsilon, polyak_coefficient
from dqn_tf.strategy import plan_devices

RESUMABLE_DIFFERENCES = {"devices"}  # a run may resume on other hardware, nothing else changes


def train(
    config: TrainConfig | dict[str, Any],
    on_event: EventCallback | None = None,
    checkpoint_dir: str | Path | None = None,
) -> TrainResult:
    """Train one agent; `on_event` gets eval/progress dicts and may return truthy to stop."""
    started = time.perf_counter()
    config = parse_config(config)
    run = _Run(config, on_event, Path(checkpoint_dir) if checkpoint_dir else None)
    run.timings["setup_seconds"] = time.perf_counter() - started
    try:
        run.loop()
    finally:
        run.close()
    return run.result(time.perf_counter() - started)


class _Run:
    """The mutable state of one training run and the steps that advance it."""

    def __init__(self, config: TrainConfig, on_event: EventCallback | None, folder: Path | None):
        self.config = config
        self.on_event = on_event or (lambda event: None)
        self.folder = folder
        env = make_vector_env(config.env_id, config.n_envs)
        obs_dim, n_actions = check_spaces(config.env_id, env)
        self.plan = plan_devices(config.devices)
        self.learner = Learner(config, obs_dim, n_actions, self.plan)
        self.replay = ReplayBuffer(config.buffer_size, obs_dim)
        self.rng = np.random.default_rng(config.seed)
        self.collector = Collector(env, seed=config.seed)
        self.evaluator = Evaluator(config.env_id, config.n_eval_episodes, config.seed)
        self.policy = GreedyPolicy(self.learner.greedy_layers())
        self.env_steps = 0
        self.gradient_steps = 0
        self.pending_target_updates = 0
        self.evals: list[dict[str, Any]] = []
        self.stop_reason: str | None = None
        self.resumed_from_step: int | None = None
        self.session_start_step = 0
        self.timings = {"collect_seconds": 0.0, "train_seconds": 0.0, "eval_seconds": 0.0}
        if folder is not None:
            self._restore()

    # -- the loop -----------------------------------------------------------------------------

    def loop(self) -> None:
        config = self.config
        train_every = config.train_freq * config.n_envs
        progress_every = max(config.total_timesteps // 100, 1)
        self.loop_started = time.perf_counter()
        collect_started = time.perf_counter()
        while self.env_steps < config.total_timesteps and self.stop_reason is None:
            epsilon = linear_epsilon(
                self.env_steps, config.total_timesteps, config.exploration_fraction,
                config.exploration_initial_eps, config.exploration_final_eps,
            )
            actions = self.policy.act(self.collector.obs, epsilon, self.rng)
            obs, actions, rewards, next_obs, terminated, valid = self.collector.step(
                actions, self.env_steps
            )
            if valid.all():
                self.replay.add(obs, actions, rewards, next_obs, terminated)
            else:
                self.replay.add(obs[valid], actions[valid], rewards[valid], next_obs[valid], terminated[valid])
            before, self.env_steps = self.env_steps, self.env_steps + int(valid.sum())
            self.pending_target_updates += crossings(before, self.env_steps, config.target_update_interval)
            phases = crossings(before, self.env_steps, train_every)
            evaluate = config.eval_freq and crossings(before, self.env_steps, config.eval_freq)
            report = crossings(before, self.env_steps, progress_every)
            if not (phases or evaluate or report):
                continue
            self.timings["collect_seconds"] += time.perf_counter() - collect_started
            if phases and self.env_steps > config.learning_starts:
                self._train_phase(phases * config.gradient_steps)
            if report:
                self._emit(self._progress_event())
            if evaluate and self.stop_reason is None:
                self._evaluate()
            collect_started = time.perf_counter()
        self.timings["collect_seconds"] += time.perf_counter() - collect_started
        if not self.evals or (self.evals[-1]["step"] != self.env_steps and self.stop_reason is None):
            self._evaluate()

    def _train_phase(self, steps: int) -> None:
        started = time.perf_counter()
        tau = polyak_coefficient(self.config.tau, self.pending_target_updates)
        self.pending_target_updates = 0
        batch = self.replay.sample(self.rng, (steps, self.config.batch_size))
        stats = self.learner.train(batch, tau)
        if not stats["finite"]:
            raise TrainingDiverged(
                f"diverged: loss {stats['loss']} / mean Q {stats['q_mean']} at env step {self.env_steps}"
            )
        self.gradient_steps += steps
        self.policy = GreedyPolicy(self.learner.greedy_layers())
        self.timings["train_seconds"] += time.perf_counter() - started

    def _evaluate(self) -> None:
        started = time.perf_counter()
        event = {"event": "eval", "step": self.env_steps, **self.evaluator.run(self.policy)}
        self.evals.append(event)
        self.timings["eval_seconds"] += time.perf_counter() - started
        if self.folder is not None:
            self._save()
        self._emit(event)

    def _progress_event(self) -> dict[str, Any]:
        elapsed = time.perf_counter() - self.loop_started
        return {
            "event": "progress",
            "step": self.env_steps,
            "total_timesteps": self.config.total_timesteps,
            "steps_per_second": (self.env_steps - self.session_start_step) / max(elapsed, 1e-9),
            "episodes": len(self.collector.tracker.episodes),
        }

    def _emit(self, event: dict[str, Any]) -> None:
        answer = self.on_event(dict(event))
        if answer:
            self.stop_reason = answer if isinstance(answer, str) else "stopped by on_event"

    # -- checkpoints --------------------------------------------------------------------------

    def _save(self) -> None:
        arrays = {f"replay/{k}": v for k, v in self.replay.state().items()}
        for name, values in self.learner.state().items():
            arrays.update(checkpoint.pack(name, values))
        state = {
            "config": self.config.to_dict(),
            "env_steps": self.env_steps,
            "gradient_steps": self.gradient_steps,
            "pending_target_updates": self.pending_target_updates,
            "rng": self.rng.bit_generator.state,
            "collector": self.collector,
            "evaluator_count": self.evaluator.count,
            "evals": self.evals,
        }
        checkpoint.save(self.folder, self.env_steps, arrays, state)

    def _restore(self) -> None:
        saved = checkpoint.load(self.folder)
        if saved is None:
            return
        arrays, state = saved
        changed = [
            f"{key} (checkpoint {state['config'][key]!r}, now {value!r})"
            for key, value in self.config.to_dict().items()
            if key not in RESUMABLE_DIFFERENCES and state["config"].get(key) != value
        ]
        if changed:
            raise ConfigError(
                f"checkpoint_dir = '{self.folder}' holds a run with another config: "
                + ", ".join(changed) + "; use a new folder or the same config"
            )
        self.learner.load_state({name: checkpoint.unpack(name, arrays) for name in ("online", "target", "optimizer")})
        self.replay.load_state({k.removeprefix("replay/"): v for k, v in arrays.items() if k.startswith("replay/")})
        self.collector.env.close()
        self.collector = state["collector"]
        self.rng.bit_generator.state = state["rng"]
        self.evaluator.count = state["evaluator_count"]
        self.env_steps = self.session_start_step = self.resumed_from_step = state["env_steps"]
        self.gradient_steps = state["gradient_steps"]
        self.pending_target_updates = state["pending_target_updates"]
        self.evals = state["evals"]
        self.policy = GreedyPolicy(self.learner.greedy_layers())

    # -- the outcome --------------------------------------------------------------------------

    def close(self) -> None:
        self.collector.env.close()
        self.evaluator.close()

    def result(self, wall_seconds: float) -> TrainResult:
        final = self.evals[-1]
        steps_this_session = self.env_steps - self.session_start_step
        return TrainResult(
            config=self.config.to_dict(),
            final_eval_mean=final["mean_return"],
            final_eval_std=final["std_return"],
            evals=[{k: v for k, v in e.items() if k != "event"} for e in self.evals],
            episodes=list(self.collector.tracker.episodes),
            env_steps=self.env_steps,
            gradient_steps=self.gradient_steps,
            wall_seconds=wall_seconds,
            steps_per_second=steps_this_session / max(wall_seconds, 1e-9),
            replicas=self.plan.replicas,
            devices=list(self.plan.devices),
            stopped_early=self.stop_reason is not None,
            stop_reason=self.stop_reason,
            resumed_from_step=self.resumed_from_step,
            timings={k: round(v, 4) for k, v in self.timings.items()},
        )
