"""What every training loop shares: the schedule of chunks, events, evaluation rounds, stopping
members, checkpoints and results. A loop (`python_loop`, `compiled_loop`) only says how to
advance its members to a step, evaluate them, drop some and save its own state.

Members are in lockstep (all count `vector steps * n_envs`), so member k does exactly what its
solo run does at exactly the same steps. A member stops alone: when `on_event` answers one of its
events with a truthy value (not once it trained to the end: answers to its last events are
ignored), when it diverges, or at the end of its budget. A stopped member costs nothing more: the
loop drops it. Evaluations are labelled with the `eval_freq` boundary they belong to (`step`; the
member's counter is `env_steps`, larger when `n_envs` does not divide `eval_freq`); the final one
has `step == total_timesteps` and `final`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from dqn_tf import checkpoint
from dqn_tf.config import TrainConfig
from dqn_tf.errors import ConfigError
from dqn_tf.result import EventCallback, TrainResult
from dqn_tf.schedules import crossings
from dqn_tf.strategy import DevicePlan

RESUMABLE_DIFFERENCES = {"devices"}  # a run may resume on other hardware, nothing else changes


class Population:
    """Per-member records are indexed by member; a loop's arrays by row, `alive[row]` = member."""

    loop_name = ""
    # The Python loop trains between `advance` calls, so each call ends at a train boundary; a
    # loop that trains inside `advance` (the compiled one) runs on to the next event instead.
    trains_inside_advance = False

    def __init__(self, configs: list[TrainConfig], on_event: EventCallback | None, folder: Path | None,
                 plan: DevicePlan):
        self.configs, self.shared = configs, configs[0]  # every shape-changing field is shared
        self.on_event = on_event or (lambda event: None)
        self.folder, self.plan = folder, plan
        members = len(configs)
        self.alive = list(range(members))
        self.steps = self.session_start = 0
        self.env_steps = [0] * members
        self.gradient_steps = [0] * members
        self.last_stats: list[tuple[float | None, float | None]] = [(None, None)] * members
        self.stop_reasons: list[str | None] = [None] * members
        self.diverged = [False] * members
        self.evals: list[list[dict[str, Any]]] = [[] for _ in configs]
        self.episodes: list[list[dict[str, Any]]] = [[] for _ in configs]
        self.resumed_from_step: int | None = None
        self.resumed_exactly: bool | None = None  # a loop sets False where an env's state was not restored
        self.timings: dict[str, float] = {"collect_seconds": 0.0, "train_seconds": 0.0,
                                        "eval_seconds": 0.0, "checkpoint_seconds": 0.0, "checkpoint_saves": 0,
                                        "checkpoint_bytes": 0}
        saved = checkpoint.load(folder) if folder is not None else None
        if saved:
            self._restore(*saved)
        self.build(saved)

    # -- what a loop provides -----------------------------------------------------------------

    def build(self, saved: tuple[dict[str, np.ndarray], dict[str, Any]] | None) -> None:
        """Make the live members' envs and networks (where the checkpoint left them, if any)."""
        raise NotImplementedError

    def advance(self, due: int) -> None:
        """Collect and train every live member until `steps == due` (a boundary)."""
        raise NotImplementedError

    def evaluate(self, rows: list[int]) -> list[dict[str, float]]:
        """Greedy evaluation results of these rows."""
        raise NotImplementedError

    def keep(self, rows: list[int]) -> None:
        """Only these rows go on (`alive` already lists their members)."""
        raise NotImplementedError

    def save_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """The loop's own arrays and JSON state, for a checkpoint."""
        raise NotImplementedError

    def close(self) -> None:
        pass

    # -- the loop -----------------------------------------------------------------------------

    def loop(self) -> None:
        shared = self.shared
        n_envs, total, eval_freq = shared.n_envs, shared.total_timesteps, shared.eval_freq
        progress_every = max(total // 100, 1)
        stops = (progress_every,) if self.trains_inside_advance else (shared.train_freq * n_envs, progress_every)
        self.loop_started = time.perf_counter()
        while self.alive:
            due = min(total, *((self.steps // every + 1) * every for every in stops),
                      (self.steps // eval_freq + 1) * eval_freq if eval_freq else total)
            self.advance(due)
            before = self.steps - n_envs  # only the last step can have crossed a boundary
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

    def _running(self) -> list[int]:
        return [m for m in self.alive if self.stop_reasons[m] is None]

    def record_training(self, stats: dict[str, np.ndarray], gradient_steps: np.ndarray | int) -> None:
        """A loop reports each live row's latest loss / mean Q, finiteness and gradient steps."""
        for row, member in enumerate(self.alive):
            loss, q_mean = float(stats["loss"][row]), float(stats["q_mean"][row])
            self.last_stats[member] = (loss, q_mean)
            if stats["finite"][row]:
                self.gradient_steps[member] += int(np.broadcast_to(gradient_steps, len(self.alive))[row])
            elif not self.diverged[member]:
                self.diverged[member] = True
                at = int(stats["diverged_at"][row]) if "diverged_at" in stats else self.steps
                self.stop_reasons[member] = f"diverged: loss {loss} / mean Q {q_mean} at env step {at}"

    def _evaluate_round(self, label: int, final: bool) -> None:
        started = time.perf_counter()
        running = self._running()
        results = self.evaluate([self.alive.index(member) for member in running])
        for member, result in zip(running, results):
            event = {"event": "eval", "member": member, "step": label, "env_steps": self.steps,
                     "final": final, **result}
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
            "episodes": len(self.episodes[member]),
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
        self.alive = [self.alive[r] for r in rows]
        if rows:
            self.keep(rows)

    # -- checkpoints --------------------------------------------------------------------------

    def _save(self) -> None:
        started = time.perf_counter()
        arrays, loop_state = self.save_state()
        state = {
            "configs": [c.to_dict() for c in self.configs], "loop": self.loop_name,
            "alive": self.alive, "steps": self.steps,
            "env_steps": self.env_steps, "gradient_steps": self.gradient_steps, "last_stats": self.last_stats,
            "stop_reasons": self.stop_reasons, "diverged": self.diverged, "evals": self.evals,
            "episodes": self.episodes, **loop_state,
        }
        self.timings["checkpoint_bytes"] = checkpoint.save(self.folder, self.steps, arrays, state)
        self.timings["checkpoint_saves"] += 1
        self.timings["checkpoint_seconds"] += time.perf_counter() - started

    def _restore(self, arrays: dict[str, np.ndarray], state: dict[str, Any]) -> None:
        """Continue the bookkeeping where the checkpoint left off (the loop restores its part)."""
        self._check_same_configs(state["configs"])
        self.alive = state["alive"]
        self.episodes = state["episodes"]
        self.steps = self.session_start = self.resumed_from_step = state["steps"]
        self.resumed_exactly = True
        self.env_steps = state["env_steps"]
        self.gradient_steps, self.last_stats = state["gradient_steps"], [tuple(s) for s in state["last_stats"]]
        self.stop_reasons, self.diverged, self.evals = state["stop_reasons"], state["diverged"], state["evals"]

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
            episodes=list(self.episodes[member]),
            env_steps=self.env_steps[member],
            gradient_steps=self.gradient_steps[member],
            wall_seconds=wall_seconds,
            steps_per_second=max(self.env_steps[member] - self.session_start, 0) / max(wall_seconds, 1e-9),
            replicas=self.plan.replicas,
            devices=list(self.plan.devices),
            stopped_early=self.stop_reasons[member] is not None,
            stop_reason=self.stop_reasons[member],
            resumed_from_step=self.resumed_from_step,
            resumed_exactly=self.resumed_exactly,
            timings=timings,
            member=member,
            diverged=self.diverged[member],
            loop=self.loop_name,
        )
