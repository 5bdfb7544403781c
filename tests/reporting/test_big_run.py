"""Big run folders stay readable: the report of a 3,000-trial folder reads the top trials' curves
only and draws bounded figures and tables; `status` reads the trials table when it is as new as
the journal, and says the same as the journal does."""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState, create_trial

from sweeps.reporting import report
from sweeps.results import load
from sweeps.store.writer import ResultsWriter
from tests.helpers import dqn_sweep

N = 3000


@pytest.fixture(scope="module")
def big_run(tmp_path_factory) -> Path:
    """N trials (90% COMPLETE, 8% PRUNED, 2% FAIL) on 16 workers, 5 evaluations each."""
    run_dir = tmp_path_factory.mktemp("big")
    study = optuna.create_study(direction="maximize")
    space = {"lr": FloatDistribution(1e-4, 1e-1, log=True), "arch": CategoricalDistribution(["[64]", "[256]"])}
    trials = []
    for k in range(N):
        state = TrialState.FAIL if k % 50 == 7 else TrialState.PRUNED if k % 12 == 5 else TrialState.COMPLETE
        lr = 1e-4 * 1000 ** ((k * 7919 % N) / N)
        trials.append(create_trial(
            params={"lr": lr, "arch": ["[64]", "[256]"][k % 2]}, distributions=space, state=state,
            value=1000 * lr if state == TrialState.COMPLETE else None,
            intermediate_values={100 * s: 1000 * lr * s / 5 for s in range(1, 6)},
            user_attrs={"worker": f"tcp://127.0.0.1:{9000 + k % 16}", "env_steps": 500,
                        "fail_reason": "seed 0: diverged: loss became nan" if state == TrialState.FAIL else None},
        ))
    study.add_trials(trials)
    writer = ResultsWriter(run_dir, study, flush_every=3600)
    for trial in study.trials:
        writer.add_trial(trial.number, {0: {"evals": [
            {"step": step, "mean_return": value, "std_return": 1.0, "min_return": value, "max_return": value,
             "env_steps": step} for step, value in sorted(trial.intermediate_values.items())], "episodes": []}})
        if trial.number % 16 == 15:
            writer.flush()  # a part file per 16 trials, as a sweep finishing 16 a second writes
    writer.close()
    return run_dir


def test_the_report_draws_the_top_trials_curves_only(big_run):
    trials = load(big_run, tables=["trials"])["trials"]
    best = trials[trials["state"] == "COMPLETE"].sort_values("value", ascending=False)["number"].head(5)
    assert set(report.curves_of(big_run, trials, top=5)["trial"]) == set(best)


@pytest.mark.timeout(300)
def test_the_report_of_a_big_run_is_bounded(big_run, tmp_path):
    page = report.write_report(big_run, tmp_path / "r.html").read_text(encoding="utf-8")
    complete = N - N // 50 - sum(1 for k in range(N) if k % 12 == 5 and k % 50 != 7)
    assert page.count("<img") == 6
    assert f"(the best 1,000 of {complete:,} COMPLETE trials)" in page
    assert f"(the last 1,000 of {N:,} trials to start)" in page
    section = re.search(r"<section id='trials'>(.*?)</section>", page, re.DOTALL).group(1)
    assert section.count("<tr") == 1 + report.MAX_ROWS and f"The best {report.MAX_ROWS} of {N:,}" in section
    failures = re.search(r"<section id='failures'>(.*?)</section>", page, re.DOTALL).group(1)
    assert failures.count("<h3>") == 1 and f"{N // 50} trials: 7, 57, 107," in failures


def status(run_dir: Path) -> str:
    return dqn_sweep("status", str(run_dir), check=True).stdout


@pytest.mark.timeout(300)
def test_status_reads_the_table_when_it_is_as_new_as_the_journal_and_says_the_same(run_dir, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    journal, table = copy / "journal.log", copy / "trials.parquet"

    def age(path: Path, seconds: float) -> None:
        stamp = time.time_ns() - int(seconds * 1e9)
        os.utime(path, ns=(stamp, stamp))

    age(table, 10)
    age(journal, 20)
    from_table = status(copy)
    age(table, 30)  # older than the journal: the journal is replayed
    assert status(copy) == from_table
    assert "complete" in from_table and "best: trial" in from_table
    journal.write_text("this journal would not replay\n")  # the table alone answers while it is newer
    age(journal, 60)
    assert status(copy) == from_table
