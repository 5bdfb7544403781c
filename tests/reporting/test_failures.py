"""Failure grouping, shared by `dqn-sweep status` and the report."""

import pandas as pd

from sweeps.reporting.failures import failure_groups
from sweeps.reporting.status import summary


def test_failures_group_by_first_line_keep_a_whole_example_and_list_in_order():
    trials = pd.DataFrame({
        "number": [0, 1, 2, 3, 4, 5],
        "state": ["FAIL", "COMPLETE", "FAIL", "FAIL", "FAIL", "FAIL"],
        "value": [None, 1.0, None, None, None, None],
        "fail_reason": ["seed 0: diverged: loss is NaN\nat step 300", None, "timeout after 5 s",
                        "seed 0: diverged: loss is NaN\nat step 900", None, "timeout after 5 s"],
    })
    groups = failure_groups(trials)
    assert [(g.reason, g.numbers) for g in groups] == [
        ("seed 0: diverged: loss is NaN", [0, 3]), ("timeout after 5 s", [2, 5]), ("unknown", [4])]
    assert groups[0].example == "seed 0: diverged: loss is NaN\nat step 300"
    lines = list(summary("s", trials))
    assert lines[-3:] == ["failed: 2 trials (0, 3): seed 0: diverged: loss is NaN",
                          "failed: 2 trials (2, 5): timeout after 5 s", "failed: trial 4: unknown"]
    assert lines[1] == 'best: trial 1 value 1.000 params {}'


def test_no_failures_no_groups():
    assert failure_groups(pd.DataFrame({"number": [0], "state": ["COMPLETE"], "value": [1.0]})) == []
    assert failure_groups(pd.DataFrame()) == []
