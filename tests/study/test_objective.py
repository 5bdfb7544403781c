"""The objective: one number per seed from its evaluation curve, aggregated over seeds."""

import pytest

from sweeps.study import objective

EVALS = [{"step": 100, "mean_return": 10.0}, {"step": 200, "mean_return": 500.0},
         {"step": 300, "mean_return": 80.0}, {"step": 400, "mean_return": 100.0}]


def test_curve_metrics():
    assert objective.curve_metric(EVALS, "final", 3) == 100.0
    assert objective.curve_metric(EVALS, "last_k", 2) == 90.0
    assert objective.curve_metric(EVALS, "last_k", 10) == pytest.approx(172.5)
    # trapezoid area / length: (255 + 290 + 90) * 100 / 300
    assert objective.curve_metric(EVALS, "auc", 3) == pytest.approx(635 / 3)
    assert objective.curve_metric(EVALS[:1], "auc", 3) == 10.0
    with pytest.raises(ValueError, match="no evaluations"):
        objective.curve_metric([], "final", 1)


def test_aggregation_mean_and_interquartile_mean():
    assert objective.aggregate([1, 2, 3, 100], "mean") == 26.5
    assert objective.aggregate([1, 2, 3, 100], "iqm") == 2.5  # drops the lowest and the highest quarter
    assert objective.aggregate([4, 1, 3, 2, 1000, -1000, 0, 5], "iqm") == pytest.approx(2.5)
    assert objective.aggregate([7.0], "iqm") == 7.0
    assert objective.aggregate([1.0, 3.0], "iqm") == 2.0
