"""The driver on each storage backend, against the real server: the run folder's journal,
SQLite, PostgreSQL and Redis (`tests/servers.py`). One suite, parametrised over them all (as
Optuna tests its storages): a sweep asks, reports, prunes, fails a broken trial with its reason
and tells; a second session resumes the study and takes over the trial a dead driver left
RUNNING; the `optuna` CLI and optuna-dashboard read the study as dqn-sweep says to open it.
A real 2-worker LocalCluster runs the fake trainer in child processes."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from sweeps.driver import recovery
from sweeps.driver.loop import Driver
from sweeps.driver.session import open_study
from sweeps.results import load
from sweeps.store.storage import storage_cli_args
from sweeps.study.loading import parse_spec
from tests.helpers import BIN, FAKE, get_json
from tests.servers import free_port

pytestmark = pytest.mark.timeout(180)


def make_spec(**changes) -> object:
    data = {
        "study": "backends",
        "env_id": "CartPole-v1",
        "trainer": {"total_timesteps": 1000, "eval_freq": 100, "train_freq": 100},
        "space": {"learning_rate": {"type": "float", "low": 1e-3, "high": 1e-1, "log": True},
                  "exploration_fraction": {"type": "categorical", "choices": [0.1, 0.2, 0.5]},
                  "train_freq": {"type": "categorical", "choices": [100, 500]}},  # ms per evaluation here
        "objective": {"metric": "final"},
        "budget": {"n_trials": 6, "max_failed": 20},
        "parallel": 2,
        "sampler": {"name": "random", "seed": 3},
        "pruner": {"name": "percentile", "options": {"percentile": 90.0, "n_startup_trials": 1}},
        "storage": {"heartbeat": 1, "grace": 2},
    }
    return parse_spec({**data, **changes})


def sweep(spec, client, run_dir: Path, url: str | None, enqueue=()) -> tuple[optuna.Study, object]:
    study = open_study(spec, run_dir, url)
    for learning_rate, exploration_fraction, train_freq in enqueue:
        study.enqueue_trial({"learning_rate": learning_rate, "exploration_fraction": exploration_fraction,
                             "train_freq": train_freq})
    return study, Driver(spec, study, client, run_dir, entry=FAKE).drive()


def test_a_sweep_on_each_storage_prunes_fails_resumes_and_is_read_by_optunas_tools(storage_url, client, tmp_path):
    run_dir = tmp_path / "run"
    # The best first: the pruner (percentile 90 of what finished) stops the weak, slow ones after it
    # (a task's events reach the driver about once a second).
    first = [(0.09, 0.1, 100), (0.08, 0.1, 100), (0.001, 0.1, 500), (0.05, 0.5, 100), (0.002, 0.1, 500),
             (0.003, 0.1, 500), (0.004, 0.1, 500)]
    study, tally = sweep(make_spec(), client, run_dir, storage_url, first)
    states = [t.state for t in study.trials]
    assert states.count(TrialState.COMPLETE) + states.count(TrialState.PRUNED) == 6 == tally.finished
    assert TrialState.PRUNED in states and TrialState.RUNNING not in states
    failed = [t for t in study.trials if t.state == TrialState.FAIL]
    assert failed and all("fake trainer bug" in t.user_attrs["fail_reason"] for t in failed)  # exploration 0.5
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert all(t.value == pytest.approx(1000 * t.params["learning_rate"]) for t in complete)
    assert all(len(t.intermediate_values) == 10 for t in complete)

    # A driver died with a trial RUNNING: the next session takes it over once its lease expired
    # (it never had one: `grace` seconds after it started) and runs it again, from its params.
    lost_params = {"learning_rate": 0.07, "exploration_fraction": 0.2, "train_freq": 100}
    study.enqueue_trial(lost_params)
    lost = study.ask()  # killed before it drew its params: they are only the queue's
    study, tally = sweep(make_spec(budget={"n_trials": 9, "max_failed": 20}), client, run_dir, storage_url,
                         [(0.06, 0.1, 100), (0.05, 0.2, 100)])
    trials = study.trials
    assert tally.finished_before == 6 and tally.finished == 9
    assert trials[lost.number].state == TrialState.FAIL
    assert trials[lost.number].user_attrs["fail_reason"] == recovery.DRIVER_LOST
    (copy,) = [t for t in trials if t.user_attrs.get("requeued_from") == lost.number]
    assert copy.params == lost_params and copy.state in (TrialState.COMPLETE, TrialState.PRUNED)
    assert TrialState.RUNNING not in [t.state for t in trials]
    assert len(load(run_dir)["trials"]) == len(trials)

    # `optuna trials`, with the arguments dqn-sweep prints, lists every trial as stored.
    listed = subprocess.run([str(BIN / "optuna"), "trials", *storage_cli_args(storage_url, run_dir),
                             "--study-name", "backends", "-f", "json"], check=False, capture_output=True, text=True,
                            timeout=120)
    assert listed.returncode == 0, listed.stderr[-2000:]
    rows = json.loads(listed.stdout)
    assert [(row["number"], row["state"]) for row in rows] == [(t.number, t.state.name) for t in trials]

    # optuna-dashboard serves the study and its trials.
    target = storage_url or str(run_dir / "journal.log")
    port = free_port()
    proc = subprocess.Popen([str(BIN / "optuna-dashboard"), target, "--host", "127.0.0.1", "--port", str(port), "--server", "wsgiref"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        base = f"http://127.0.0.1:{port}/api/studies"
        (summary,) = [s for s in get_json(base, proc)["study_summaries"] if s["study_name"] == "backends"]
        served = get_json(f"{base}/{summary['study_id']}", proc)["trials"]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert [(t["number"], t["state"].upper()) for t in served] == [(t.number, t.state.name) for t in trials]
