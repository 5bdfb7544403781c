"""The search space of a study: how each `space:` entry is suggested to Optuna, what the grid
sampler enumerates, and how a trial's stored params become trainer configs."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import optuna

    from sweeps.study.spec import CategoricalParam, FloatParam, IntParam, StudySpec


def encode_choice(value: Any) -> Any:
    """Optuna choices must be scalars: lists (layer sizes) travel as JSON strings."""
    return json.dumps(value) if isinstance(value, (list, tuple, dict)) else value


def decode_choice(value: Any, choices: Sequence[Any]) -> Any:
    """Invert `encode_choice` for the choices of one parameter."""
    for choice in choices:
        if encode_choice(choice) == value:
            return choice
    return value


def grid_values(param: FloatParam | IntParam | CategoricalParam) -> list[Any]:
    """The values a grid search takes for one parameter: every choice, or low, low + step, ...
    up to high (a step that does not divide the range stops below high, as Optuna's does)."""
    if param.type == "categorical":
        return [encode_choice(c) for c in param.choices]
    if param.type == "float":
        count = math.floor((param.high - param.low) / param.step + 1e-9) + 1
        return [float(param.low + i * param.step) for i in range(count)]
    return list(range(param.low, param.high + 1, param.step))


def grid_space(spec: StudySpec) -> dict[str, list[Any]]:
    """Every parameter as a finite list of values, for the grid sampler."""
    return {key: grid_values(param) for key, param in spec.space.items()}


def grid_size(spec: StudySpec) -> int:
    """Number of points of the grid search over the space (the grid sampler's own grid)."""
    return math.prod(len(values) for values in grid_space(spec).values())


def suggest(trial: optuna.trial.BaseTrial, spec: StudySpec) -> dict[str, Any]:
    """Sample the space for `trial`; returns trainer field values (lists decoded)."""
    values: dict[str, Any] = {}
    for key, param in spec.space.items():
        if param.type == "categorical":
            raw = trial.suggest_categorical(key, [encode_choice(c) for c in param.choices])
            values[key] = decode_choice(raw, param.choices)
        elif param.type == "float":
            values[key] = trial.suggest_float(key, param.low, param.high, log=param.log, step=param.step)
        else:
            values[key] = trial.suggest_int(key, param.low, param.high, log=param.log, step=param.step)
    return values


def params_to_config(params: dict[str, Any], spec: StudySpec) -> dict[str, Any]:
    """A stored trial's params back to trainer field values: choices decoded, numbers as the
    space's type (a trials table holds an int param as a float where other trials lack it)."""
    out = {}
    for key, value in params.items():
        param = spec.space.get(key)
        kind = None if param is None else param.type
        if kind == "categorical":
            value = decode_choice(value, param.choices)
        elif kind in ("int", "float"):
            value = int(value) if kind == "int" else float(value)
        out[key] = value
    return out


def with_params(base: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """Trainer fields with a trial's params applied: `env_kwargs.KEY` sets one keyword of the
    env's `env_kwargs` (the others stay), any other param its field."""
    out = dict(base)
    for key, value in params.items():
        field, dot, keyword = key.partition(".")
        if dot:
            out[field] = {**(out.get(field) or {}), keyword: value}
        else:
            out[key] = value
    return out


def seed_configs(spec: StudySpec, params: dict[str, Any]) -> list[dict[str, Any]]:
    """One trainer config (plain dict) per seed of a trial."""
    base = with_params(spec.base_config(), params)
    return [{**base, "seed": seed} for seed in spec.seed_list]
