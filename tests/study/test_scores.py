"""Held-out figures: the interquartile mean by its definition, the 95% interval as scipy's
bootstrap computes it (and as a plain numpy percentile bootstrap roughly agrees), the paired
difference to the baseline, and a held-out table's figures per config."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from sweeps.study import scores
from sweeps.study.objective import aggregate
from sweeps.study.spec import Objective

RETURNS = [500.0, 12.0, 230.0, 480.0, 9.0, 310.0, 500.0, 120.0, 75.0, 260.0]  # ten seeds' scores


def test_iqm_is_the_mean_of_the_middle_half():
    # sorted: 1 2 3 4 | 5 6 7 8 | 9 100 ... eight values: drop two at each end, keep 3 4 5 6
    assert scores.iqm([100.0, 1.0, 6.0, 3.0, 2.0, 5.0, 4.0, 7.0]) == pytest.approx(4.5)
    # ten values: a quarter is 2.5, rounded down to 2 dropped at each end
    middle = sorted(RETURNS)[2:8]
    assert scores.iqm(RETURNS) == pytest.approx(sum(middle) / 6)
    assert scores.iqm(RETURNS) == pytest.approx(aggregate(RETURNS, "iqm"))  # the objective's own IQM
    assert scores.iqm([3.0, 1.0, 2.0]) == pytest.approx(2.0)  # three values: none dropped


def test_the_interval_is_scipys_percentile_bootstrap_with_a_fixed_seed():
    mean = scores.estimate(RETURNS, np.mean)
    expected = stats.bootstrap((np.array(RETURNS),), np.mean, n_resamples=10_000, confidence_level=0.95,
                               method="percentile", rng=np.random.default_rng(0)).confidence_interval
    assert (mean.value, mean.low, mean.high) == (pytest.approx(np.mean(RETURNS)), expected.low, expected.high)
    assert scores.estimate(RETURNS, np.mean) == mean  # the same table gives the same interval

    # an independent percentile bootstrap (its own resampling): the same interval up to resampling noise
    rng = np.random.default_rng(12345)
    resampled = np.asarray(RETURNS)[rng.integers(0, len(RETURNS), size=(20_000, len(RETURNS)))].mean(axis=1)
    low, high = np.percentile(resampled, [2.5, 97.5])
    assert mean.low == pytest.approx(low, abs=8) and mean.high == pytest.approx(high, abs=8)
    assert mean.low < np.mean(RETURNS) < mean.high and mean.high - mean.low > 100  # wide: ten noisy seeds

    middle = scores.estimate(RETURNS, scores.iqm)
    expected = stats.bootstrap((np.array(RETURNS),), lambda x, axis: stats.trim_mean(x, 0.25, axis=axis),
                               n_resamples=10_000, method="percentile", rng=np.random.default_rng(0)).confidence_interval
    assert (middle.low, middle.high) == (expected.low, expected.high)


def test_one_seed_has_no_interval_and_equal_seeds_a_point():
    one = scores.estimate([42.0], np.mean)
    assert one.value == 42.0 and np.isnan(one.low) and np.isnan(one.high)
    same = scores.estimate([500.0] * 5, np.mean)
    assert (same.value, same.low, same.high) == (500.0, 500.0, 500.0)


def test_the_difference_to_the_baseline_is_paired_by_seed_on_common_seeds():
    baseline = {seed: value for seed, value in zip(range(1000, 1010), RETURNS)}
    better = {seed: value + 7.0 for seed, value in baseline.items() if seed != 1009}  # one seed missing
    gap = scores.difference(better, baseline)
    assert (gap.value, gap.low, gap.high) == (pytest.approx(7.0), pytest.approx(7.0), pytest.approx(7.0))
    noisy = {seed: value + (10.0 if seed % 2 else -4.0) for seed, value in baseline.items()}
    gap = scores.difference(noisy, baseline)
    assert gap.value == pytest.approx(3.0) and -4.0 <= gap.low < 3.0 < gap.high <= 10.0
    assert scores.difference({1: 1.0}, {2: 1.0}) is None


def curve(config, trial, seed, finals):
    """Rows of a held-out table: evaluations at steps 100, 200, 300 ending at `finals`."""
    return [{"config": config, "trial": trial, "seed": seed, "step": step, "mean_return": value}
            for step, value in zip((100, 200, 300), finals)]


def test_figures_per_config_use_the_objectives_metric_and_aggregate():
    rows = []
    for seed, (a, b) in zip((1000, 1001, 1002, 1003), ((10, 20), (30, 40), (50, 60), (1000, 1000))):
        rows += curve("trial 3", 3, seed, [0.0, a, b])
        rows += curve("baseline", None, seed, [0.0, a - 5, b - 5])
    table = pd.DataFrame(rows).sample(frac=1.0, random_state=0)  # the table's order does not matter
    figures = scores.figures(table, Objective(metric="last_k", k=2, seed_aggregate="iqm")).set_index("config")
    per_seed = [15.0, 35.0, 55.0, 1000.0]  # mean of the last 2 evaluations of each seed
    mine = figures.loc["trial 3"]
    assert mine["trial"] == 3 and mine["seeds"] == 4
    assert mine["mean"] == pytest.approx(np.mean(per_seed))
    assert mine["iqm"] == pytest.approx(45.0) and mine["value"] == pytest.approx(45.0)  # seeds 35, 55 kept
    assert mine["vs_baseline"] == pytest.approx(5.0) and mine["vs_baseline_low"] == pytest.approx(5.0)
    assert pd.isna(figures.loc["baseline", "trial"]) and pd.isna(figures.loc["baseline", "vs_baseline"])
    final = scores.figures(table, Objective(metric="final", seed_aggregate="mean")).set_index("config")
    assert final.loc["trial 3", "value"] == pytest.approx(np.mean([20, 40, 60, 1000]))
