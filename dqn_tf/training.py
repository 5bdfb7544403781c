"""`train_population(configs, on_event)`: K DQN agents side by side in one process and one
compiled train call; `train(config, on_event)` is the population of one.

Each member follows Stable-Baselines3's DQN (so rl-zoo's tuned settings mean the same here): uniformly random actions before `learning_starts`, then epsilon-greedy; envs
autoreset in the same step, so every vector step stores `n_envs` real transitions; every
`train_freq` vector steps take `gradient_steps` gradient steps once more than `learning_starts`
transitions are in; update the target net every `target_update_interval` transitions; evaluate
every `eval_freq` transitions and at the end.

Members are in lockstep (all count `vector steps * n_envs`), so member k does exactly what its
solo run does at exactly the same steps: same env seeding, actions, replay samples, training
phases, target updates and evaluations (`member k == train(config k)` is tested). A member
stops alone: when `on_event` answers one of its events with a truthy value (not once it trained
to the end: answers to its last events are ignored), when it diverges (its result says so; `train` raises TrainingDiverged), or at the
end of its budget. A stopped member costs nothing more: its envs, replay and networks leave the
population.

Evaluations are labelled with the `eval_freq` boundary they belong to (`step`; the member's
counter is `env_steps`, larger when `n_envs` does not divide `eval_freq`), so seeds aggregate and
pruners compare like with like; the final evaluation has `step == total_timesteps` and `final`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from dqn_tf import checkpoint, env_state
from dqn_tf.config import TrainConfig, check_population, parse_config
from dqn_tf.envs import Collector, check_spaces
from dqn_tf.errors import ConfigError
from dqn_tf.evaluate import Evaluator
from dqn_tf.learner import Learner
from dqn_tf.policy import act
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
    """The state of one population's training and the steps that advance it.

    Per-member records (results, stop reasons, RNGs, evaluators) are indexed by member; the
    arrays of the members still training (envs, replay, networks) by row, `alive[row]` = member.
    """

    def __init__(self, configs: list[TrainConfig], on_event: EventCallback | None, folder: Path | None):
        self.configs, self.shared = configs, configs[0]  # every shape-changing field is shared
        self.on_event = on_event or (lambda event: None)
        self.folder = folder
        members = len(configs)
        self.alive = list(range(members))
        self.collector = Collector(self.shared.env_id, self.shared.n_envs, [c.seed for c in configs])
        self.obs_shape, self.n_actions = check_spaces(self.shared.env_id, self.collector.envs[0])
        self.obs_dim = self.obs_shape[0]  # the MLP's input; images [H, W, C] need the CNN's obs_shape
        self.plan = plan_devices(self.shared.devices)
        self.replay = ReplayBuffer(self.shared.buffer_size, self.obs_dim, members)
        self.rngs = [np.random.default_rng(c.seed) for c in configs]
        self.evaluators = [Evaluator(self.shared.env_id, self.shared.n_eval_episodes, c.seed) for c in configs]
        self.steps = self.trained_at = self.session_start = 0
        self.env_steps = [0] * members
        self.gradient_steps = [0] * members
        self.last_stats: list[tuple[float | None, float | None]] = [(None, None)] * members
        self.stop_reasons: list[str | None] = [None] * members
        self.diverged = [False] * members
        self.evals: list[list[dict[str, Any]]] = [[] for _ in configs]
        self.resumed_from_step: int | None = None
        self.timings = {"collect_seconds": 0.0, "train_seconds": 0.0, "eval_seconds": 0.0,
                        "checkpoint_seconds": 0.0, "checkpoint_saves": 0, "checkpoint_bytes": 0}
        saved = checkpoint.load(folder) if folder is not None else None
        states = self._restore(*saved) if saved else None
        self.learner = Learner([configs[m] for m in self.alive], self.obs_dim, self.n_actions, self.plan, states)
        self._rows_changed()

    # -- the loop -----------------------------------------------------------------------------

    def loop(self) -> None:
        shared = self.shared
        n_envs, total, eval_freq = shared.n_envs, shared.total_timesteps, shared.eval_freq
        train_every, progress_every = shared.train_freq * n_envs, max(total // 100, 1)
        self.loop_started = time.perf_counter()
        while self.alive:
            due = min(total, *((self.steps // every + 1) * every for every in (train_every, progress_every)),
                      (self.steps // eval_freq + 1) * eval_freq if eval_freq else total)
            started = time.perf_counter()
            while self.steps < due:
                self._collect()
            self.timings["collect_seconds"] += time.perf_counter() - started
            before = self.steps - n_envs  # only the last step can have crossed a boundary
            if crossings(before, self.steps, train_every) and self.steps > shared.learning_starts:
                self._train_phase()
            if crossings(before, self.steps, progress_every):
                for member in self._running():
                    self._emit(member, self._progress_event(member))
            final = self.steps >= total
            evaluated = final or (eval_freq and crossings(before, self.steps, eval_freq))
            if evaluated:
                self._evaluate_round(total if final else self.steps // eval_freq * eval_freq, final)
            self._drop(finished=final)
            if evaluated and not final and self.folder is not None and self.alive:
                self._save()  # one checkpoint per evaluation round, of the members that go on

    def _collect(self) -> None:
        shared = self.shared
        warm_up = self.steps < shared.learning_starts
        epsilon = None if warm_up else linear_epsilon(self.steps, shared.total_timesteps, *self.exploration)
        actions = act(self.policy, self.collector.obs, epsilon, self.row_rngs, uniform=warm_up)
        self.steps += shared.n_envs
        obs, rewards, next_obs, terminated = self.collector.step(actions, self.steps)
        self.replay.add(obs, actions, rewards, next_obs, terminated)

    def _running(self) -> list[int]:
        return [m for m in self.alive if self.stop_reasons[m] is None]

    def _train_phase(self) -> None:
        started = time.perf_counter()
        shared = self.shared
        interval = shared.target_update_interval
        tau = polyak_coefficient(self.tau, self.steps // interval - self.trained_at // interval)
        self.trained_at = self.steps
        stats = self.learner.train(self.replay.sample(self.row_rngs, (shared.gradient_steps, shared.batch_size)), tau)
        for row, member in enumerate(self.alive):
            loss, q_mean = float(stats["loss"][row]), float(stats["q_mean"][row])
            self.last_stats[member] = (loss, q_mean)
            if stats["finite"][row]:
                self.gradient_steps[member] += shared.gradient_steps
            else:
                self.diverged[member] = True
                self.stop_reasons[member] = f"diverged: loss {loss} / mean Q {q_mean} at env step {self.steps}"
        self.policy = self.learner.greedy_layers()
        self.timings["train_seconds"] += time.perf_counter() - started

    def _evaluate_round(self, label: int, final: bool) -> None:
        """Every running member evaluates its greedy policy."""
        started = time.perf_counter()
        for member in self._running():
            results = self.evaluators[member].run(self.policy[self.alive.index(member)])
            event = {"event": "eval", "member": member, "step": label, "env_steps": self.steps,
                     "final": final, **results}
            self.evals[member].append(event)
            self._emit(member, event)
        self.timings["eval_seconds"] += time.perf_counter() - started

    def _emit(self, member: int, event: dict[str, Any]) -> None:
        answer = self.on_event(dict(event))
        trained_to_the_end = self.steps >= self.shared.total_timesteps  # a stop has nothing left to stop
        if answer and not trained_to_the_end and self.stop_reasons[member] is None:
            self.stop_reasons[member] = answer if isinstance(answer, str) else "stopped by on_event"

    def _progress_event(self, member: int) -> dict[str, Any]:
        elapsed = time.perf_counter() - self.loop_started
        loss, q_mean = self.last_stats[member]
        return {
            "event": "progress",
            "member": member,
            "step": self.steps,
            "total_timesteps": self.shared.total_timesteps,
            "steps_per_second": (self.steps - self.session_start) / max(elapsed, 1e-9),
            "episodes": len(self.collector.episodes[member]),
            "loss": loss,
            "q_mean": q_mean,
        }

    def _drop(self, finished: bool) -> None:
        """Members that stopped (or all, at the end) leave the population and cost nothing more."""
        rows = [] if finished else [r for r, m in enumerate(self.alive) if self.stop_reasons[m] is None]
        if len(rows) == len(self.alive):
            return
        for row, member in enumerate(self.alive):
            if row not in rows:
                self.env_steps[member] = self.steps
        if rows:
            self.collector.keep(rows)
            self.replay.keep(rows)
            self.learner = self.learner.subset(rows)
        self.alive = [self.alive[r] for r in rows]
        self._rows_changed()

    def _rows_changed(self) -> None:
        """Per-row views of per-member settings, rebuilt when members leave."""
        configs = [self.configs[m] for m in self.alive]
        self.row_rngs = [self.rngs[m] for m in self.alive]
        self.tau = np.array([c.tau for c in configs])
        self.exploration = [np.array([getattr(c, name) for c in configs]) for name in
                            ("exploration_fraction", "exploration_initial_eps", "exploration_final_eps")]
        self.policy = self.learner.greedy_layers() if self.alive else []

    # -- checkpoints --------------------------------------------------------------------------

    def _save(self) -> None:
        started = time.perf_counter()
        arrays = {f"replay/{name}": values for name, values in self.replay.state().items()}
        for row, member_state in enumerate(self.learner.state()):
            for name, values in member_state.items():
                arrays.update({f"learner/{row}/{name}/{i}": v for i, v in enumerate(values)})
        arrays.update({"collector/obs": self.collector.obs, "collector/returns": self.collector.returns,
                       "collector/lengths": self.collector.lengths})
        state = {
            "configs": [c.to_dict() for c in self.configs],
            "alive": self.alive, "steps": self.steps, "trained_at": self.trained_at,
            "env_steps": self.env_steps, "gradient_steps": self.gradient_steps, "last_stats": self.last_stats,
            "stop_reasons": self.stop_reasons, "diverged": self.diverged, "evals": self.evals,
            "episodes": self.collector.episodes,
            "rngs": [rng.bit_generator.state for rng in self.rngs],
            "envs": [env_state.capture(env) for env in self.collector.envs],
            "evaluator_counts": [e.count for e in self.evaluators],
        }
        self.timings["checkpoint_bytes"] = checkpoint.save(self.folder, self.steps, arrays, state)
        self.timings["checkpoint_saves"] += 1
        self.timings["checkpoint_seconds"] += time.perf_counter() - started

    def _restore(self, arrays: dict[str, np.ndarray], state: dict[str, Any]) -> list[dict[str, list[np.ndarray]]]:
        """Continue where the checkpoint left off; returns the live members' learner states."""
        self._check_same_configs(state["configs"])
        self.alive = state["alive"]
        self.collector.keep(self.alive)  # fresh envs, reset with each member's seed ...
        for row, saved in enumerate(state["envs"]):
            if saved is None:  # ... an env we cannot snapshot starts a fresh episode (inexact)
                continue
            env_state.restore(self.collector.envs[row], saved)
            for name in ("obs", "returns", "lengths"):
                getattr(self.collector, name)[row] = arrays[f"collector/{name}"][row]
        self.collector.episodes = state["episodes"]
        self.replay.keep(list(range(len(self.alive))))
        self.replay.load_state({k.removeprefix("replay/"): v for k, v in arrays.items() if k.startswith("replay/")})
        for rng, rng_state in zip(self.rngs, state["rngs"]):
            rng.bit_generator.state = rng_state
        for evaluator, count in zip(self.evaluators, state["evaluator_counts"]):
            evaluator.count = count
        self.steps = self.session_start = self.resumed_from_step = state["steps"]
        self.trained_at, self.env_steps = state["trained_at"], state["env_steps"]
        self.gradient_steps, self.last_stats = state["gradient_steps"], [tuple(s) for s in state["last_stats"]]
        self.stop_reasons, self.diverged, self.evals = state["stop_reasons"], state["diverged"], state["evals"]
        return [{name: _unpack(arrays, f"learner/{row}/{name}") for name in ("online", "target", "optimizer")}
                for row in range(len(self.alive))]

    def _check_same_configs(self, saved: list[dict[str, Any]]) -> None:
        if len(saved) != len(self.configs):
            raise ConfigError(
                f"checkpoint_dir = '{self.folder}' holds a population of {len(saved)} member(s), "
                f"now {len(self.configs)}; use a new folder or the same configs"
            )
        changed = [
            ("" if len(self.configs) == 1 else f"member {k} ")
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
        self.collector.close()
        for evaluator in self.evaluators:
            evaluator.close()

    def results(self, wall_seconds: float) -> list[TrainResult]:
        timings = {name: round(value, 4) for name, value in self.timings.items()}
        return [self._result(m, wall_seconds, timings) for m in range(len(self.configs))]

    def _result(self, member: int, wall_seconds: float, timings: dict[str, float]) -> TrainResult:
        evals = self.evals[member]
        final = evals[-1] if evals else {}
        return TrainResult(
            config=self.configs[member].to_dict(),
            final_eval_mean=final.get("mean_return"),
            final_eval_std=final.get("std_return"),
            evals=[{key: v for key, v in e.items() if key not in ("event", "member")} for e in evals],
            episodes=list(self.collector.episodes[member]),
            env_steps=self.env_steps[member],
            gradient_steps=self.gradient_steps[member],
            wall_seconds=wall_seconds,
            steps_per_second=max(self.env_steps[member] - self.session_start, 0) / max(wall_seconds, 1e-9),
            replicas=self.plan.replicas,
            devices=list(self.plan.devices),
            stopped_early=self.stop_reasons[member] is not None,
            stop_reason=self.stop_reasons[member],
            resumed_from_step=self.resumed_from_step,
            timings=timings,
            member=member,
            diverged=self.diverged[member],
        )


def _unpack(arrays: dict[str, np.ndarray], prefix: str) -> list[np.ndarray]:
    count = sum(1 for name in arrays if name.startswith(prefix + "/"))
    return [arrays[f"{prefix}/{i}"] for i in range(count)]
