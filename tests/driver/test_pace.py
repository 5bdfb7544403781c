"""The slow-ask warning: it fires when asks take a quarter of the time between completions, names
what to change for the sampler in use, repeats only when asks have doubled, and the summary
reports every kind of call."""

import pytest

from sweeps.driver.pace import WINDOW, Pace


def paced(sampler: str, ask_seconds: float, n: int = 20) -> Pace:
    pace = Pace(sampler)
    for _ in range(n):
        pace.add("ask", ask_seconds)
    return pace


def test_fast_asks_say_nothing():
    # 16 trials of 1 s in flight finish every 62.5 ms; 10 ms asks use 16% of that
    assert paced("tpe", 0.010).advice(finished=500, trial_seconds=1.0, parallel=16) is None
    assert paced("tpe", 0.010).advice(finished=500, trial_seconds=None, parallel=16) is None


@pytest.mark.parametrize(("sampler", "hint"), [
    ("tpe", "n_ei_candidates hardly changes it"),
    ("gp", "use tpe past a few hundred trials"),
    ("random", "asks wait on the storage"),
])
def test_slow_asks_warn_with_what_to_change(sampler, hint):
    warning = paced(sampler, 0.2).advice(finished=10_000, trial_seconds=1.0, parallel=16)
    assert warning is not None and hint in warning
    assert "200 ms" in warning and "10000 finished trials" in warning and "320%" in warning


def test_the_warning_repeats_only_when_asks_have_doubled():
    pace = paced("tpe", 0.05)
    assert pace.advice(1000, 1.0, 16) is not None
    for _ in range(WINDOW):
        pace.add("ask", 0.09)
    assert pace.advice(2000, 1.0, 16) is None  # slower, not yet twice as slow
    for _ in range(WINDOW):
        pace.add("ask", 0.11)
    assert pace.advice(3000, 1.0, 16) is not None


def test_the_summary_reports_each_kind_of_call():
    pace = paced("random", 0.002, n=4)
    with pace.timed("tell"):
        pass
    summary = pace.summary()
    assert "ask 2.0 ms x 4" in summary and "tell " in summary and "x 1" in summary and "report" not in summary
