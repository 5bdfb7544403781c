"""The compiled loop's host side: one `compiled_program.Program` call per chunk, then the bookkeeping
(episodes, training stats, divergence) the Python loop keeps, read back from the program."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from dqn_tf.compiled_program import program_for
from dqn_tf.env_source import graph_env_for
from dqn_tf.population import Population


class CompiledPopulation(Population):
    loop_name = "compiled"
    trains_inside_advance = True

    def build(self, saved) -> None:
        started = time.perf_counter()
        self.env = graph_env_for(self.shared)  # with the max_episode_steps of env_kwargs, if any
        self.program = program_for([self.configs[m] for m in self.alive], self.env, self.plan.devices[0])
        self.eval_count = 0
        if saved:
            arrays, state = saved
            self.program.load({k.removeprefix("program/"): v for k, v in arrays.items() if k.startswith("program/")})
            self.eval_count = state["eval_count"]
        self.timings["build_seconds"] = time.perf_counter() - started

    def advance(self, due: int) -> None:
        started = time.perf_counter()
        first = self.steps
        n = self.shared.n_envs
        for row, _env, t, episode_return, length in self.program.advance(due):
            episodes = self.episodes[self.alive[row]]
            episodes.append({"episode": len(episodes), "step": first + (t + 1) * n,
                             "return": episode_return, "length": length})
        program = self.program
        self.steps = int(program.steps.numpy())
        if program.adam_steps.numpy().max() > 0:  # trained at least once
            loss, q_mean = program.loss.numpy(), program.q_mean.numpy()
            diverged_at = program.diverged_at.numpy()
            stats = {"loss": loss, "q_mean": q_mean, "finite": diverged_at < 0, "diverged_at": diverged_at}
            gradient_steps = program.gradient_steps.numpy()
            before = np.array([self.gradient_steps[m] for m in self.alive])
            self.record_training(stats, np.maximum(gradient_steps - before, 0))
        self.timings["train_seconds"] += time.perf_counter() - started

    def evaluate(self, rows: list[int]) -> list[dict[str, float]]:
        returns = self.program.evaluate(self.eval_count)
        self.eval_count += 1
        return [{"mean_return": float(r.mean()), "std_return": float(r.std()), "min_return": float(r.min()),
                 "max_return": float(r.max()), "episodes": int(r.size)} for r in returns[rows]]

    def keep(self, rows: list[int]) -> None:
        self.program = self.program.subset(rows)

    def save_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        arrays = {f"program/{name}": value for name, value in self.program.arrays().items()}
        return arrays, {"eval_count": self.eval_count}
