"""Optuna pieces built from a StudySpec: sampler, pruner, suggested configs, objective values.

All Optuna-specific knowledge of the study file lives here, so the driver only asks, tells
and reports.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import optuna
from optuna.study._tell import _tell_with_warning
from optuna.trial import TrialState

if TYPE_CHECKING:
    from sweeps.spec import StudySpec

SAMPLER_CLASSES: dict[str, type] = {
    "tpe": optuna.samplers.TPESampler,
    "random": optuna.samplers.RandomSampler,
    "cmaes": optuna.samplers.CmaEsSampler,
    "gp": optuna.samplers.GPSampler,
    "qmc": optuna.samplers.QMCSampler,
    "grid": optuna.samplers.GridSampler,
}
BLIND_SAMPLERS = ("random", "qmc", "grid")  # draw without looking at finished trials
PRUNER_CLASSES: dict[str, type] = {
    "median": optuna.pruners.MedianPruner,
    "percentile": optuna.pruners.PercentilePruner,
    "successive_halving": optuna.pruners.SuccessiveHalvingPruner,
    "hyperband": optuna.pruners.HyperbandPruner,
    "none": optuna.pruners.NopPruner,
}


SESSION_ATTR = "driver_session:"  # study user attrs, one per driver session: {"seed": ...}


def make_sampler(spec: StudySpec, seed: int | None = None) -> optuna.samplers.BaseSampler:
    """The study's sampler, seeded with `seed` (default `sampler.seed`). TPE gets
    `constant_liar` so parallel asks spread out."""
    name, options = spec.sampler.name, dict(spec.sampler.options)
    seed = spec.sampler.seed if seed is None else seed
    if name == "tpe":
        options.setdefault("constant_liar", True)
    if name == "grid":
        return optuna.samplers.GridSampler(grid_space(spec), seed=seed, **options)
    return SAMPLER_CLASSES[name](seed=seed, **options)


def session_seed(study: optuna.Study, seed: int | None) -> int | None:
    """This driver session's sampler seed: drivers sharing a study must not draw the same trials.

    Every session records itself on the study (user attr `driver_session:<id>`). The first
    session on a study uses `seed` itself, so a fresh sweep is reproducible; the k-th (k counted
    from the sessions recorded before it; a study that ran trials but has no record, as older
    versions left them, counts as one) uses
    a seed derived from (seed, k), so resuming is reproducible too. Two sessions starting at the
    same moment may count the same k; of any two such, at least one sees the other's record
    appear while registering (each writes, then reads), and that one mixes its own random id in.
    `seed` None stays None: every session draws at random.
    """
    if seed is None:
        return None

    def recorded() -> set[str]:
        return {key for key in study.user_attrs if key.startswith(SESSION_ATTR)}

    before = recorded()
    ran = study.get_trials(deepcopy=False, states=tuple(s for s in TrialState if s != TrialState.WAITING))
    earlier = len(before) if before else int(bool(ran))
    me = uuid.uuid4()
    key = f"{SESSION_ATTR}{me.hex}"
    study.set_user_attr(key, {"index": earlier})
    raced = bool(recorded() - before - {key})
    if earlier == 0 and not raced:
        chosen = seed
    else:
        entropy = [seed, earlier, me.int] if raced else [seed, earlier]
        chosen = int(np.random.SeedSequence(entropy).generate_state(1)[0])
    study.set_user_attr(key, {"index": earlier, "seed": chosen})
    return chosen


def make_pruner(spec: StudySpec) -> optuna.pruners.BasePruner:
    """The study's pruner; hyperband's resource defaults to the trainer's step budget."""
    name, options = spec.pruner.name, dict(spec.pruner.options)
    if name == "hyperband":
        options.setdefault("max_resource", int(spec.trainer.get("total_timesteps", 50_000)))
    return PRUNER_CLASSES[name](**options)


def encode_choice(value: Any) -> Any:
    """Optuna choices must be scalars: lists (layer sizes) travel as JSON strings."""
    return json.dumps(value) if isinstance(value, (list, tuple, dict)) else value


def decode_choice(value: Any, choices: Sequence[Any]) -> Any:
    """Invert `encode_choice` for the choices of one parameter."""
    for choice in choices:
        if encode_choice(choice) == value:
            return choice
    return value


def grid_space(spec: StudySpec) -> dict[str, list[Any]]:
    """Every parameter as a finite list of values, for the grid sampler."""
    from sweeps.spec import CategoricalParam, FloatParam

    grid: dict[str, list[Any]] = {}
    for key, param in spec.space.items():
        if isinstance(param, CategoricalParam):
            grid[key] = [encode_choice(c) for c in param.choices]
        elif isinstance(param, FloatParam):
            count = round((param.high - param.low) / param.step) + 1
            grid[key] = [float(param.low + i * param.step) for i in range(count)]
        else:
            grid[key] = list(range(param.low, param.high + 1, param.step))
    return grid


def suggest(trial: optuna.trial.BaseTrial, spec: StudySpec) -> dict[str, Any]:
    """Sample the space for `trial`; returns trainer field values (lists decoded)."""
    from sweeps.spec import CategoricalParam, FloatParam

    values: dict[str, Any] = {}
    for key, param in spec.space.items():
        if isinstance(param, CategoricalParam):
            raw = trial.suggest_categorical(key, [encode_choice(c) for c in param.choices])
            values[key] = decode_choice(raw, param.choices)
        elif isinstance(param, FloatParam):
            values[key] = trial.suggest_float(key, param.low, param.high, log=param.log, step=param.step)
        else:
            values[key] = trial.suggest_int(key, param.low, param.high, log=param.log, step=param.step)
    return values


def params_to_config(params: dict[str, Any], spec: StudySpec) -> dict[str, Any]:
    """A stored trial's params (JSON-encoded choices) back to trainer field values."""
    from sweeps.spec import CategoricalParam

    out = {}
    for key, value in params.items():
        param = spec.space.get(key)
        out[key] = decode_choice(value, param.choices) if isinstance(param, CategoricalParam) else value
    return out


def seed_configs(spec: StudySpec, params: dict[str, Any]) -> list[dict[str, Any]]:
    """One trainer config (plain dict) per seed of a trial."""
    base = {**spec.base_config(), **params}
    return [{**base, "seed": seed} for seed in spec.seed_list]


def curve_metric(evals: Sequence[dict[str, Any]], metric: str, k: int) -> float:
    """One number from one run's evaluation curve (see `sweeps.spec.Objective`). Plain Python:
    the driver computes one per seed at every reported step, on a few numbers each."""
    if not evals:
        raise ValueError("the run reported no evaluations: set trainer.eval_freq > 0")
    means = [float(e["mean_return"]) for e in evals]
    if metric == "final":
        return means[-1]
    if metric == "last_k":
        return mean(means[-k:])
    steps = [float(e["step"]) for e in evals]
    if len(means) == 1 or steps[-1] == steps[0]:
        return mean(means)
    area = sum((a + b) / 2 * (t - s) for a, b, s, t in zip(means, means[1:], steps, steps[1:]))
    return area / (steps[-1] - steps[0])


def mean(values: Sequence[float]) -> float:
    """As numpy's: NaN from +inf and -inf, inf on overflow (never an error)."""
    return sum(values) / len(values)


def aggregate(values: Sequence[float], how: str) -> float:
    """Combine per-seed values: plain mean, or interquartile mean (drops the outer quarters;
    NaN sorts last)."""
    data = sorted((float(v) for v in values), key=lambda v: (math.isnan(v), v))
    if not data:
        raise ValueError("no values to aggregate")
    if how == "iqm":
        cut = math.floor(len(data) * 0.25)
        data = data[cut : len(data) - cut] if len(data) - 2 * cut > 0 else data
    return mean(data)


def tell(study: optuna.Study, trial: optuna.Trial | int, value: float | None = None,
         state: optuna.trial.TrialState | None = None) -> None:
    """`study.tell`, tolerating the grid sampler's `study.stop()` outside `optimize`.

    The grid sampler stops a study when its grid is exhausted, which raises under ask/tell
    after the trial has been stored; our budget already caps trials at the grid size.
    `Study.tell` is Optuna's `_tell_with_warning` plus a deep copy of the told trial for its
    caller, which nobody here reads (a tenth of a millisecond or more per trial at 10,000).
    """
    try:
        _tell_with_warning(study, trial, value, state)
    except RuntimeError as error:
        if "Study.stop" not in str(error):
            raise
