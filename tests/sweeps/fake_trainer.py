"""A stand-in for `dqn_tf.train_population` (no TensorFlow) for the driver's orchestration tests.

Members advance in lockstep, as in the real population. Mean return = 1000 * learning_rate *
step / total + seed, so the best trial is predictable. A member with `gamma == 0.5` diverges
(alone); `exploration_fraction == 0.5` raises a plain error; `exploration_fraction == 0.25`
crashes the process; each eval sleeps `train_freq` ms.
"""

from __future__ import annotations

import os
import time

from dqn_tf.result import TrainResult


def train_population(configs, on_event=None, checkpoint_dir=None):
    started = time.perf_counter()
    first = configs[0]
    evals = [[] for _ in configs]
    stop_reasons = [None] * len(configs)
    diverged = [False] * len(configs)
    steps = [0] * len(configs)
    for step in range(first.eval_freq, first.total_timesteps + 1, first.eval_freq):
        time.sleep(first.train_freq / 1000)
        for k, config in enumerate(configs):
            if stop_reasons[k] is not None:
                continue
            if config.exploration_fraction == 0.5:
                raise ValueError("fake trainer bug")
            if config.exploration_fraction == 0.25:
                os._exit(3)
            steps[k] = step
            if config.gamma == 0.5:
                diverged[k], stop_reasons[k] = True, f"diverged: loss became nan at step {step}"
                continue
            mean = 1000 * config.learning_rate * step / config.total_timesteps + config.seed
            event = {"event": "eval", "member": k, "step": step, "mean_return": mean, "std_return": 1.0,
                     "min_return": mean - 1, "max_return": mean + 1, "episodes": step // 10}
            evals[k].append(event)
            if on_event is not None and (answer := on_event(event)):
                stop_reasons[k] = str(answer)
        if all(reason is not None for reason in stop_reasons):
            break
    wall = time.perf_counter() - started
    return [
        TrainResult(
            config=config.to_dict(), final_eval_mean=evals[k][-1]["mean_return"] if evals[k] else None,
            final_eval_std=1.0, evals=evals[k],
            episodes=[{"episode": i, "step": (i + 1) * 10, "return": 10.0, "length": 10} for i in range(steps[k] // 10)],
            env_steps=steps[k], gradient_steps=steps[k] // 4, wall_seconds=wall,
            steps_per_second=steps[k] / wall, replicas=1, devices=["/cpu:0"],
            stopped_early=stop_reasons[k] is not None, stop_reason=stop_reasons[k], member=k,
            diverged=diverged[k],
        )
        for k, config in enumerate(configs)
    ]
