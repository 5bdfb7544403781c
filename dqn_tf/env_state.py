"""Pickle-free snapshots of a vector env's state, so checkpoints hold only JSON and arrays.

A checkpoint must never execute code when read, so envs are not pickled: we save what decides
their future (physical state, episode step counts, RNG state) as plain data and write it back
into freshly made envs. That covers SameStepCartPole and SyncVectorEnvs whose envs keep their
state in `unwrapped.state` (Acrobot, MountainCar, Pendulum-like classic control). For other envs
`capture` returns None and a resumed run starts fresh episodes (`restore` is then not called).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from dqn_tf.envs import SameStepCartPole


def capture(env: gym.vector.VectorEnv) -> dict[str, Any] | None:
    """The env's state as JSON-ready data, or None when we do not know how to capture it."""
    if isinstance(env, SameStepCartPole):
        return {"state": env.state.tolist(), "steps": env.steps.tolist(), "rng": env.np_random.bit_generator.state}
    if not isinstance(env, gym.vector.SyncVectorEnv):
        return None
    subs = []
    for sub in env.envs:
        raw = sub.unwrapped
        if getattr(raw, "state", None) is None or np.asarray(raw.state).dtype.kind != "f":
            return None
        subs.append({"state": np.asarray(raw.state, np.float64).tolist(),
                     "rng": raw.np_random.bit_generator.state, "elapsed": getattr(_time_limit(sub), "_elapsed_steps", None)})
    return {"envs": subs}


def restore(env: gym.vector.VectorEnv, saved: dict[str, Any]) -> None:
    """Write a `capture` back into an env of the same kind that has been reset once."""
    if isinstance(env, SameStepCartPole):
        env.state = np.array(saved["state"], np.float64)
        env.steps = np.array(saved["steps"], np.int32)
        env.np_random.bit_generator.state = saved["rng"]
        return
    for sub, state in zip(env.envs, saved["envs"], strict=True):
        raw = sub.unwrapped
        raw.state = np.array(state["state"], np.float64)
        raw.np_random.bit_generator.state = state["rng"]
        if (limit := _time_limit(sub)) is not None:
            limit._elapsed_steps = state["elapsed"]


def _time_limit(env: gym.Env) -> gym.wrappers.TimeLimit | None:
    while isinstance(env, gym.Wrapper):
        if isinstance(env, gym.wrappers.TimeLimit):
            return env
        env = env.env
    return None
