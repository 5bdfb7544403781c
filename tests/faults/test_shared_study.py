"""Two `dqn-sweep run` drivers grow one PostgreSQL study on real `dask scheduler`/`dask worker`
processes (each driver with its own run folder, as on two machines), the fake trainer logging
each run's life (`tests/faults/logged_trainer.py`).

- One driver is SIGKILLed mid-sweep: the other finishes the budget; the dead driver's trials are
  failed ("driver lost") and re-queued once, only after the grace period (by the database's
  clock); nothing is lost, nothing stays RUNNING, and no trial's second run starts while its
  first is alive (the scheduler releases a dead driver's tasks and their runs stop).
- One driver is SIGSTOPped: its trials go to the other only once its heartbeats are older than
  the grace period; woken up (SIGCONT), it finds them taken, stops their runs and goes on.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import time
from pathlib import Path

import optuna
import pytest
import sqlalchemy
import yaml
from optuna.trial import TrialState

from sweeps.driver.recovery import DRIVER_LOST
from sweeps.store.leases import DRIVER
from sweeps.store.storage import open_storage
from tests.clusters.procs import BIN, ROOT, dask_cluster, logs
from tests.faults.logged_trainer import lives

pytestmark = pytest.mark.timeout(240)
ENTRY = "tests.faults.logged_trainer:train_population"
GRACE = 4


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A scheduler and two 2-thread workers; (address, the runs log, the cluster's folder)."""
    folder = tmp_path_factory.mktemp("cluster")
    runs_log = folder / "runs.jsonl"
    with dask_cluster(folder, workers=(("w1", ["--nthreads", "2"]), ("w2", ["--nthreads", "2"])),
                      env={"DQN_SWEEP_RUNS_LOG": str(runs_log)}) as (address, _, _):
        yield address, runs_log, folder


def study_file(folder: Path, seed: int) -> Path:
    path = folder / "shared.yaml"
    path.write_text(yaml.safe_dump({
        "study": "shared", "env_id": "CartPole-v1",
        # 8 s a trial: longer than the grace period, so a dead driver's run outlives it unless stopped
        "trainer": {"total_timesteps": 1000, "eval_freq": 100, "train_freq": 800},
        "space": {"learning_rate": {"type": "float", "low": 1e-3, "high": 1e-1, "log": True}},
        "objective": {"metric": "final"}, "budget": {"n_trials": 4}, "parallel": 2,
        "sampler": {"name": "random", "seed": seed}, "pruner": {"name": "none"},
        "storage": {"heartbeat": 1, "grace": GRACE, "outage": 60},
        "heldout": False,  # its runs would train the same configs again (`lives` counts runs by config)
    }))
    return path


def start_driver(study: Path, run_dir: Path, url: str, address: str) -> subprocess.Popen:
    run_dir.mkdir(parents=True)
    return subprocess.Popen([str(BIN / "dqn-sweep"), "run", str(study), "--scheduler", address, "--storage", url,
                             "--output", str(run_dir), "--entry", ENTRY], cwd=ROOT,
                            stdout=(run_dir / "driver.log").open("w"), stderr=subprocess.STDOUT)


def session_of(run_dir: Path) -> str:
    """The driver session that runs in `run_dir` (its rows log's lock names it)."""
    (lock,) = run_dir.glob(".rows-*.lock")
    return lock.stem.removeprefix(".rows-")


def wait_for(condition, what: str, procs=(), timeout: float = 90.0):
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        assert all(p.poll() is None for p in procs), f"{what}: a driver exited early"
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        time.sleep(0.2)
    return found


def reader(url: str, tmp_path: Path) -> optuna.Study:
    def opened():
        try:
            return optuna.load_study(study_name="shared", storage=open_storage(url, tmp_path))
        except KeyError:
            return None
    return wait_for(opened, "the study")


def running_of(study: optuna.Study, session: str) -> list[optuna.trial.FrozenTrial]:
    return [t for t in study.get_trials(states=(TrialState.RUNNING,)) if t.system_attrs.get(DRIVER) == session]


def both_running(url: str, tmp_path: Path, drivers: tuple[subprocess.Popen, ...]) -> tuple[optuna.Study, list[str]]:
    """The shared study and the sessions of drivers a and b, once each runs a trial."""
    shared = reader(url, tmp_path)
    sessions = wait_for(lambda: [session_of(tmp_path / d) for d in "ab"] if all(
        list((tmp_path / d).glob(".rows-*.lock")) for d in "ab") else None, "both sessions", drivers)
    wait_for(lambda: running_of(shared, sessions[0]) and running_of(shared, sessions[1]),
             "both drivers running trials", drivers)
    return shared, sessions


def takeover_lags(url: str, numbers: list[int]) -> list[float]:
    """Seconds from each trial's last heartbeat to its FAIL (both by this machine's clock: the
    database runs here)."""
    engine = sqlalchemy.create_engine(url)
    with engine.connect() as conn:
        lags = conn.execute(sqlalchemy.text(
            "SELECT EXTRACT(EPOCH FROM (t.datetime_complete - h.heartbeat)) FROM trials t "
            "JOIN trial_heartbeats h ON h.trial_id = t.trial_id WHERE t.number = ANY(:numbers)"),
            {"numbers": numbers}).scalars().all()
    engine.dispose()
    return [float(lag) for lag in lags]


def finish(*procs: subprocess.Popen, folders: list[Path]) -> None:
    for proc in procs:
        try:
            proc.wait(timeout=150)
        except subprocess.TimeoutExpired:
            proc.kill()
    text = "\n".join(f"--- {f}\n{(f / 'driver.log').read_text()[-3000:]}" for f in folders)
    assert all(p.returncode == 0 for p in procs), text
    assert "Traceback" not in text, text


def check_requeued(trials: list[optuna.trial.FrozenTrial], lost: list[int]) -> None:
    """Each lost trial FAIL "driver lost", its params run again to the end, once."""
    for number in lost:
        assert trials[number].state == TrialState.FAIL
        assert trials[number].user_attrs["fail_reason"] == DRIVER_LOST
        (again,) = [t for t in trials if t.user_attrs.get("requeued_from") == number]
        assert again.state == TrialState.COMPLETE and again.params == trials[number].params


def test_a_killed_drivers_trials_go_to_the_other_after_the_grace_period(cluster, postgres, tmp_path):
    address, runs_log, folder = cluster
    runs_log.write_text("")
    url, study = postgres.new_database(), study_file(tmp_path, seed=1)
    a = start_driver(study, tmp_path / "a", url, address)
    b = start_driver(study, tmp_path / "b", url, address)
    try:
        shared, sessions = both_running(url, tmp_path, (a, b))
        a.send_signal(signal.SIGKILL)
        a.wait()
        lost = [t.number for t in running_of(shared, sessions[0])]
        assert lost
        finish(b, folders=[tmp_path / "b"])
    finally:
        for proc in (a, b):
            proc.kill()
    trials = shared.get_trials()
    states = [t.state for t in trials]
    assert TrialState.RUNNING not in states, logs(folder)
    # Fresh asks keep to the budget (one over when both drivers counted at once); the lost
    # trials' copies come on top: they were counted as running when the budget was.
    fresh = [t for t in trials if "requeued_from" not in t.user_attrs]
    assert 4 <= len(fresh) <= 5 and states.count(TrialState.COMPLETE) == len(fresh)
    check_requeued(trials, lost)
    assert all(lag >= GRACE for lag in takeover_lags(url, lost))  # not before the grace period
    spans = lives(runs_log)
    for number in lost:  # the dead driver's run (if it had begun) stopped before the copy's began
        runs = spans[trials[number].params["learning_rate"]]
        assert 1 <= len(runs) <= 2 and all(earlier[1] < later[0] for earlier, later in itertools.pairwise(runs)), runs


def test_a_stopped_driver_loses_its_trials_after_the_grace_period_and_wakes_up_to_it(cluster, postgres, tmp_path):
    address, runs_log, folder = cluster
    runs_log.write_text("")
    url, study = postgres.new_database(), study_file(tmp_path, seed=2)
    a = start_driver(study, tmp_path / "a", url, address)
    b = start_driver(study, tmp_path / "b", url, address)
    try:
        shared, sessions = both_running(url, tmp_path, (a, b))
        a.send_signal(signal.SIGSTOP)
        stopped = [t.number for t in running_of(shared, sessions[0])]
        wait_for(lambda: all(shared.get_trials()[n].state == TrialState.FAIL for n in stopped),
                 "the stopped driver's trials taken over", (b,))
        assert all(lag >= GRACE for lag in takeover_lags(url, stopped))  # not before the grace period
        a.send_signal(signal.SIGCONT)
        finish(a, b, folders=[tmp_path / "a", tmp_path / "b"])
    finally:
        for proc in (a, b):
            with_cont = proc.poll() is None
            if with_cont:
                os.kill(proc.pid, signal.SIGCONT)
            proc.kill()
    trials = shared.get_trials()
    assert TrialState.RUNNING not in [t.state for t in trials], logs(folder)
    check_requeued(trials, stopped)
    assert "was taken over by another driver" in (tmp_path / "a" / "driver.log").read_text()
