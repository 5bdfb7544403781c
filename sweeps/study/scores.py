"""Held-out scores and their uncertainty (docs/heldout.md), after rliable (Agarwal et al. 2021):
a config's score on each held-out seed is the study's own curve metric (`objective:`), and over
seeds the mean and the interquartile mean each get a 95% percentile bootstrap confidence interval
(scipy.stats.bootstrap, a fixed seed: the same table gives the same interval). The difference to
the baseline is paired by seed (both trained on the same seeds) with its own interval.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from sweeps.study.heldout import BASELINE
from sweeps.study.objective import aggregate, curve_metric

if TYPE_CHECKING:
    from sweeps.study.spec import Objective

CONFIDENCE = 0.95
RESAMPLES = 10_000
BOOTSTRAP_SEED = 0
FIGURES = ["config", "trial", "seeds", "value", "mean", "mean_low", "mean_high", "iqm", "iqm_low", "iqm_high",
           "vs_baseline", "vs_baseline_low", "vs_baseline_high"]


@dataclasses.dataclass(frozen=True)
class Estimate:
    """A statistic over seeds and its confidence interval (NaN bounds with fewer than 2 seeds)."""

    value: float
    low: float
    high: float


def iqm(values: Sequence[float] | np.ndarray, axis: int = -1) -> float | np.ndarray:
    """Interquartile mean: the mean of the middle half (a quarter of the values, rounded down,
    dropped at each end), as rliable's and `seed_aggregate: iqm`."""
    from scipy.stats import trim_mean

    return trim_mean(values, 0.25, axis=axis)


def estimate(values: Sequence[float], statistic: Callable[..., float | np.ndarray]) -> Estimate:
    """`statistic(values)` with its 95% percentile bootstrap interval over the values."""
    data = np.asarray(values, dtype=float)
    value = float(statistic(data, axis=-1))
    if len(data) < 2:
        return Estimate(value, math.nan, math.nan)
    from scipy.stats import bootstrap

    result = bootstrap((data,), statistic, n_resamples=RESAMPLES, confidence_level=CONFIDENCE,
                       method="percentile", vectorized=True, rng=np.random.default_rng(BOOTSTRAP_SEED))
    return Estimate(value, float(result.confidence_interval.low), float(result.confidence_interval.high))


def difference(scores: Mapping[int, float], baseline: Mapping[int, float]) -> Estimate | None:
    """Mean of (score - baseline) over the seeds both have, with its interval; None without any."""
    common = sorted(set(scores) & set(baseline))
    if not common:
        return None
    return estimate([scores[seed] - baseline[seed] for seed in common], np.mean)


def seed_scores(heldout: pd.DataFrame, objective: Objective) -> dict[str, dict[int, float]]:
    """Each config's score per held-out seed: the objective's curve metric of that run."""
    out: dict[str, dict[int, float]] = {}
    for (config, seed), run in heldout.sort_values("step", kind="stable").groupby(["config", "seed"], sort=True):
        out.setdefault(str(config), {})[int(seed)] = curve_metric(run.to_dict("records"), objective.metric, objective.k)
    return out


def figures(heldout: pd.DataFrame, objective: Objective) -> pd.DataFrame:
    """One row per config of a held-out table (FIGURES): its trial (None for the baseline), how
    many seeds, `value` (the seeds aggregated as the objective aggregates them: what the answer
    is chosen by), mean and IQM with their intervals, and the paired difference to the baseline."""
    if heldout.empty:
        return pd.DataFrame(columns=FIGURES)
    scores = seed_scores(heldout, objective)
    trials = heldout.drop_duplicates("config").set_index("config")["trial"]
    rows = []
    for config, per_seed in scores.items():
        values = [per_seed[seed] for seed in sorted(per_seed)]
        mean, middle = estimate(values, np.mean), estimate(values, iqm)
        gap = difference(per_seed, scores[BASELINE]) if BASELINE in scores and config != BASELINE else None
        trial = trials.get(config)
        rows.append({
            "config": config, "trial": None if pd.isna(trial) else int(trial), "seeds": len(values),
            "value": aggregate(values, objective.seed_aggregate),
            "mean": mean.value, "mean_low": mean.low, "mean_high": mean.high,
            "iqm": middle.value, "iqm_low": middle.low, "iqm_high": middle.high,
            "vs_baseline": gap.value if gap else None, "vs_baseline_low": gap.low if gap else None,
            "vs_baseline_high": gap.high if gap else None,
        })
    return pd.DataFrame(rows, columns=FIGURES)
