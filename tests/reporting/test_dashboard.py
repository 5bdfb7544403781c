"""optuna-dashboard (the `dev` extra) serves a sweep's journal as README shows it: the real
`optuna-dashboard RUN_DIR/journal.log` process, asked through its JSON API."""

from __future__ import annotations

import subprocess

import optuna
import pytest

from sweeps.store.run_folder import load_run
from tests.helpers import BIN, get_json
from tests.servers import free_port

DASHBOARD = BIN / "optuna-dashboard"  # of the `dev` extra, which the tests need
pytestmark = pytest.mark.timeout(240)


def test_optuna_dashboard_lists_our_study_and_its_trials(run_dir):
    assert DASHBOARD.exists(), "optuna-dashboard is missing: pip install -e '.[dev]'"
    study, _ = load_run(run_dir)
    port = free_port()
    proc = subprocess.Popen([str(DASHBOARD), str(run_dir / "journal.log"), "--host", "127.0.0.1",
                             "--port", str(port), "--server", "wsgiref"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        base = f"http://127.0.0.1:{port}/api/studies"
        summaries = get_json(base, proc)["study_summaries"]
        (ours,) = [s for s in summaries if s["study_name"] == study.study_name]
        detail = get_json(f"{base}/{ours['study_id']}", proc)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    served = {t["number"]: t for t in detail["trials"]}
    assert sorted(served) == [t.number for t in study.trials]
    for trial in study.trials:
        shown = served[trial.number]
        assert shown["state"].upper() == trial.state.name
        if trial.state == optuna.trial.TrialState.COMPLETE:
            assert shown["values"] == [pytest.approx(trial.value)]
        attrs = {a["key"]: a["value"] for a in shown["user_attrs"]}
        assert attrs["seeds"] == str(trial.user_attrs["seeds"])  # our attributes, as text
        assert len(shown["intermediate_values"]) == len(trial.intermediate_values)
