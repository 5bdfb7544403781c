"""A stand-in for `dqn_tf.train` (no TensorFlow) for the driver's orchestration tests.

Mean return = 1000 * learning_rate * step / total + seed, so the best trial is predictable.
`gamma == 0.5` diverges; `exploration_fraction == 0.5` raises a plain error;
`exploration_fraction == 0.25` crashes the process; each eval sleeps `train_freq` ms.
"""

from __future__ import annotations

import os
import time

from dqn_tf.result import TrainingDiverged, TrainResult


def train(config, on_event=None, checkpoint_dir=None):
    started = time.perf_counter()
    evals, stop_reason, step = [], None, 0
    for step in range(config.eval_freq, config.total_timesteps + 1, config.eval_freq):
        time.sleep(config.train_freq / 1000)
        if config.gamma == 0.5:
            raise TrainingDiverged(f"loss became nan at step {step}")
        if config.exploration_fraction == 0.5:
            raise ValueError("fake trainer bug")
        if config.exploration_fraction == 0.25:
            os._exit(3)
        mean = 1000 * config.learning_rate * step / config.total_timesteps + config.seed
        event = {"event": "eval", "step": step, "mean_return": mean, "std_return": 1.0,
                 "min_return": mean - 1, "max_return": mean + 1, "episodes": step // 10}
        evals.append(event)
        if on_event is not None and (answer := on_event(event)):
            stop_reason = str(answer)
            break
    wall = time.perf_counter() - started
    episodes = [{"episode": i, "step": (i + 1) * 10, "return": 10.0, "length": 10} for i in range(step // 10)]
    return TrainResult(
        config=config.to_dict(), final_eval_mean=evals[-1]["mean_return"], final_eval_std=1.0,
        evals=evals, episodes=episodes, env_steps=step, gradient_steps=step // 4, wall_seconds=wall,
        steps_per_second=step / wall, replicas=1, devices=["/cpu:0"],
        stopped_early=stop_reason is not None, stop_reason=stop_reason,
    )
