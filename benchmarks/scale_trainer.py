"""The stand-in trainer of `benchmarks/scale.py`: sleeps like a trial and reports like one.

It has `dqn_tf.train_population`'s signature and events (no TensorFlow) and costs the driver
what a real trial costs it: per member, one "progress" event per 1% of training, an "eval"
event at every `eval_freq` boundary (the last one `final`), and a result with one training
episode per EPISODE_STEPS env steps. Its wall time is set through the config, since that is
all a trainer gets: `train_freq` is the milliseconds each `eval_freq` interval takes (so a
trial takes train_freq * total_timesteps / eval_freq ms). A member stops at the event after a
stop request, as the real one does. Mean return = 1000 * learning_rate * step / total + seed.
"""

from __future__ import annotations

import time
from typing import Any

from dqn_tf.config import TrainConfig
from dqn_tf.result import EventCallback, TrainResult

EPISODE_STEPS = 20
PROGRESS_EVENTS = 100


def train_population(configs: list[TrainConfig], on_event: EventCallback | None = None,
                     checkpoint_dir: str | None = None) -> list[TrainResult]:
    """Sleep through the trial's schedule, emitting each member's events when they fall due."""
    first = configs[0]
    total, freq = first.total_timesteps, max(1, first.eval_freq)
    seconds = first.train_freq / 1000 * total / freq
    every = max(1, total // PROGRESS_EVENTS)
    boundaries = sorted(set(range(every, total + 1, every)) | set(range(freq, total + 1, freq)) | {total})
    stopped: dict[int, str] = {}
    reached = [0] * len(configs)
    evals: list[list[dict[str, Any]]] = [[] for _ in configs]
    started = time.perf_counter()
    for step in boundaries:
        time.sleep(max(0.0, started + seconds * step / total - time.perf_counter()))
        for k, config in enumerate(configs):
            if k in stopped:
                continue
            reached[k] = step
            for event in events(config, k, step, total, freq, every, started):
                if event["event"] == "eval":
                    evals[k].append(event)
                if on_event is not None and (answer := on_event(event)) and step < total:
                    stopped[k] = str(answer)
        if len(stopped) == len(configs):
            break
    wall = time.perf_counter() - started
    return [
        TrainResult(
            config=config.to_dict(), final_eval_mean=evals[k][-1]["mean_return"] if evals[k] else None,
            final_eval_std=1.0, evals=evals[k], episodes=episodes(reached[k]), env_steps=reached[k],
            gradient_steps=reached[k] // 4, wall_seconds=wall, steps_per_second=reached[k] / wall,
            replicas=1, devices=["/cpu:0"], stopped_early=k in stopped, stop_reason=stopped.get(k),
            member=k,
        )
        for k, config in enumerate(configs)
    ]


def events(config: TrainConfig, member: int, step: int, total: int, freq: int, every: int,
           started: float) -> list[dict[str, Any]]:
    """The events member `member` sends at `step`: progress on every 1%, eval on eval boundaries."""
    out: list[dict[str, Any]] = []
    if step % every == 0 or step == total:
        out.append({"event": "progress", "member": member, "step": step, "total_timesteps": total,
                    "steps_per_second": step / max(1e-9, time.perf_counter() - started),
                    "episodes": step // EPISODE_STEPS, "loss": 0.1, "q_mean": 1.0})
    if step % freq == 0 or step == total:
        mean = 1000 * config.learning_rate * step / total + config.seed
        out.append({"event": "eval", "member": member, "step": step, "env_steps": step,
                    "final": step == total, "mean_return": mean, "std_return": 1.0,
                    "min_return": mean - 1, "max_return": mean + 1, "episodes": step // EPISODE_STEPS})
    return out


def episodes(env_steps: int) -> list[dict[str, Any]]:
    """One training episode per EPISODE_STEPS env steps, as the real trainer reports them."""
    return [{"episode": i, "step": (i + 1) * EPISODE_STEPS, "return": float(EPISODE_STEPS),
             "length": EPISODE_STEPS} for i in range(env_steps // EPISODE_STEPS)]
