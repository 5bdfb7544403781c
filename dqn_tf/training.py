"""`train_population(configs, on_event)`: K DQN agents side by side in one process; `train(config,
on_event)` is the population of one.

Two loops train the same way (Stable-Baselines3's DQN schedule, see `population`): the compiled
loop (`compiled_loop`: env, acting, replay and training in one XLA program per chunk) where the
env has an in-graph version and the run uses one device, else the Python loop (`python_loop`:
gymnasium envs stepped from Python). `loop` in the config picks one; "auto" takes the compiled
one wherever it exists and is exactly the env gymnasium would make (`compiled_loop_applies`).
They draw different random numbers, so each is reproducible on its own.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from dqn_tf.compiled_loop import CompiledPopulation
from dqn_tf.config import TrainConfig, check_population, parse_config
from dqn_tf.env_source import graph_differences, registered_id
from dqn_tf.errors import ConfigError
from dqn_tf.graph_envs import graph_env
from dqn_tf.python_loop import PythonPopulation
from dqn_tf.result import EventCallback, TrainingDiverged, TrainResult
from dqn_tf.strategy import DevicePlan, plan_devices


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
    plan = plan_devices(parsed[0].devices)
    population_class = CompiledPopulation if compiled_loop_applies(parsed[0], plan) else PythonPopulation
    run = population_class(parsed, on_event, Path(checkpoint_dir) if checkpoint_dir else None, plan)
    run.timings["setup_seconds"] = time.perf_counter() - started
    try:
        run.loop()
    finally:
        run.close()
    return run.results(time.perf_counter() - started)


def compiled_loop_applies(config: TrainConfig, plan: DevicePlan) -> bool:
    """`loop: auto` takes the compiled loop where it exists: an in-graph env on one device, and
    exactly the env gymnasium would make (no wrappers, no kwargs it cannot honour, no user code
    that registered another env under its id)."""
    if config.loop == "python":
        return False
    reasons = []
    if graph_env(registered_id(config.env_id)) is None:
        reasons.append(f"env_id = {config.env_id!r} has no in-graph version")
    reasons += graph_differences(config)
    if plan.replicas > 1:
        reasons.append(f"devices = {config.devices!r} spans {plan.replicas} devices")
    if config.precision != "float32":
        reasons.append(f"precision = {config.precision!r} (it computes in float32)")
    if reasons and config.loop == "compiled":
        raise ConfigError(f"loop = 'compiled': {'; '.join(reasons)}; use loop 'auto' or 'python'")
    return not reasons
