"""Pickle-free snapshots of a vector env's state, so checkpoints hold only JSON and arrays.

A checkpoint must never execute code when read, so envs are not pickled: we save what decides
their future (physical state, episode step counts, RNG state) as plain data and write it back
into freshly made envs. That covers SameStepCartPole and SyncVectorEnvs of gymnasium's own envs
that keep their state in `unwrapped.state` (Acrobot, MountainCar, Pendulum-like classic control)
behind wrappers that keep none (or only TimeLimit's step count). For other envs (the user's own,
or any env behind a wrapper of the user's) `capture` returns None and a resumed run starts fresh
episodes (`restore` is then not called); the run's result says so (`resumed_exactly: false`).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from dqn_tf.env_source import ObservationCheck
from dqn_tf.envs import SameStepCartPole

# Wrappers whose state is none, or TimeLimit's step count (captured below).
KNOWN_WRAPPERS = (gym.wrappers.TimeLimit, gym.wrappers.OrderEnforcing, gym.wrappers.PassiveEnvChecker,
                  gym.wrappers.FlattenObservation, ObservationCheck)


def capture(env: gym.vector.VectorEnv) -> dict[str, Any] | None:
    """The env's state as JSON-ready data, or None when we do not know how to capture it."""
    if isinstance(env, SameStepCartPole):
        return {"state": env.state.tolist(), "steps": env.steps.tolist(), "rng": env.np_random.bit_generator.state}
    if not isinstance(env, gym.vector.SyncVectorEnv):
        return None
    subs = []
    for sub in env.envs:
        raw = sub.unwrapped
        if not type(raw).__module__.startswith("gymnasium.envs.") or not _known_wrappers(sub):
            return None
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


def _known_wrappers(env: gym.Env) -> bool:
    while isinstance(env, gym.Wrapper):
        if type(env) not in KNOWN_WRAPPERS:  # a subclass may keep state of its own
            return False
        env = env.env
    return True


def _time_limit(env: gym.Env) -> gym.wrappers.TimeLimit | None:
    while isinstance(env, gym.Wrapper):
        if isinstance(env, gym.wrappers.TimeLimit):
            return env
        env = env.env
    return None
