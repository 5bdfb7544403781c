"""The driver's tables at scale, on a real 2-worker LocalCluster with the fake trainer: resumed
sweeps (also of a run folder in the single-file format) load as one dataset, the driver does not
scan the study per completion, and it reports what Optuna's calls cost."""

import shutil
import threading

import pytest

from sweeps.driver.loop import Driver
from sweeps.driver.session import open_study
from sweeps.results import load
from sweeps.store.writer import TRIALS_EVERY_S
from sweeps.study.loading import parse_spec
from tests.helpers import FAKE, LEGACY_RUN

pytestmark = pytest.mark.timeout(180)


def legacy_spec(n_trials: int, **changes):
    """The study the legacy run folder holds (3 trials x 2 seeds, 3 evaluations each)."""
    return parse_spec({
        "study": "legacy", "env_id": "CartPole-v1",
        "trainer": {"total_timesteps": 600, "eval_freq": 200, "train_freq": 5, "n_envs": 2},
        "space": {"learning_rate": {"type": "float", "low": 1e-3, "high": 1e-1, "log": True}},
        "objective": {"metric": "final"}, "budget": {"n_trials": n_trials}, "parallel": 2, "seeds": 2,
        "sampler": {"name": "random", "seed": 3}, "pruner": {"name": "none"}, **changes,
    })


class Lines:
    def __init__(self):
        self.lines = []

    def update(self, tally):
        pass

    def log(self, line):
        self.lines.append(line)


def sweep(client, run_dir, n_trials, monitor=None):
    spec = legacy_spec(n_trials)
    study = open_study(spec, run_dir, None)
    tally = Driver(spec, study, client, run_dir, monitor=monitor, entry=FAKE).drive()
    return study, tally


def assert_one_dataset(run_dir, study):
    tables = load(run_dir)
    numbers = sorted(t.number for t in study.trials)
    assert sorted(tables["trials"]["number"]) == numbers
    evals, episodes = tables["evals"], tables["episodes"]
    assert sorted(set(evals["trial"])) == numbers == sorted(set(episodes["trial"]))
    assert len(evals) == len(numbers) * 2 * 3  # 2 seeds x evaluations at 200, 400, 600
    assert not evals.duplicated(["trial", "seed", "step"]).any()
    assert not episodes.duplicated(["trial", "seed", "episode"]).any()
    for trial in study.trials:  # the final evaluation in the table is what Optuna was told
        # every step reported, also those that came with the results rather than as events
        assert sorted(trial.intermediate_values) == [200, 400, 600]
        final = evals[(evals["trial"] == trial.number) & (evals["step"] == 600)]["mean_return"].mean()
        assert final == pytest.approx(trial.value)


def test_a_resumed_sweep_loads_as_one_dataset(client, tmp_path):
    sweep(client, tmp_path, 3)
    study, tally = sweep(client, tmp_path, 6)
    assert tally.finished_before == 3 and tally.completed == 3
    assert_one_dataset(tmp_path, study)


def test_a_run_folder_of_the_single_file_format_resumes_and_loads_as_one(client, tmp_path):
    shutil.copytree(LEGACY_RUN, tmp_path, dirs_exist_ok=True)
    study, tally = sweep(client, tmp_path, 5)
    assert tally.finished_before == 3 and tally.completed == 2
    assert (tmp_path / "evals.parquet").exists() and (tmp_path / "evals").is_dir()
    assert_one_dataset(tmp_path, study)


def test_the_driver_scans_the_study_per_session_not_per_trial_and_reports_optuna_times(client, tmp_path):
    spec = legacy_spec(12)
    study = open_study(spec, tmp_path, None)
    scans = []  # (thread, states) of each scan
    get_trials = study.get_trials
    study.get_trials = lambda *args, **kwargs: scans.append(
        (threading.current_thread().name, kwargs.get("states"))) or get_trials(*args, **kwargs)
    monitor = Lines()
    tally = Driver(spec, study, client, tmp_path, monitor=monitor, entry=FAKE).drive()
    assert tally.completed == 12
    # the driver's thread: start-up (running, orphans, session seed, earlier results) and the
    # last trials table; the results writer's thread: on its debounce (TRIALS_EVERY_S)
    driver = [states for thread, states in scans if thread != "results-writer"]
    table = [states for thread, states in scans if thread == "results-writer"]
    assert len(driver) <= 5, driver
    assert 1 <= len(table) <= 1 + tally.elapsed / TRIALS_EVERY_S
    (summary,) = [line for line in monitor.lines if line.startswith("optuna this session")]
    assert "ask " in summary and "tell " in summary and summary.count("x 12") == 2
