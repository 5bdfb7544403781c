"""The number a trial is judged by (`objective:` in the study): one value per seed from its
evaluation curve, combined over seeds. Plain Python: the driver computes one per seed at every
reported step, on a few numbers each."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sweeps.study.spec import Objective


def curve_metric(evals: Sequence[Mapping[str, Any]], metric: str, k: int) -> float:
    """One number from one run's evaluation curve (see `sweeps.study.spec.Objective`)."""
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


def objective_value(curves: Sequence[Sequence[Mapping[str, Any]]], objective: Objective) -> float:
    """A trial's objective from its seeds' evaluation curves: each seed's metric, aggregated."""
    per_seed = [curve_metric(curve, objective.metric, objective.k) for curve in curves]
    return aggregate(per_seed, objective.seed_aggregate)
