"""A LocalCluster worker SIGKILLed mid-trial (real trainer): the task is rerun on a live
worker, resumes from its checkpoint in the run folder, and every trial ends COMPLETE (also
when two trials were packed into the task)."""

import logging
import os
import signal
import threading
import time
from pathlib import Path

import pytest
import yaml
from optuna.trial import TrialState

from sweeps.driver.loop import Driver
from sweeps.driver.session import open_study
from sweeps.results import load
from sweeps.study.loading import parse_spec
from tests.helpers import FAKE, SMOKE, local_client, wait_until


def kill_worker_after_first_checkpoint(driver: Driver, run_dir: Path, killed: dict) -> None:
    """Wait for a seed-run's first checkpoint, then SIGKILL the worker process running it."""
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        states = sorted(run_dir.glob("checkpoints/trial-*/seed-*/state.json"))
        if states:
            number = int(states[0].parent.parent.name.removeprefix("trial-").split("+")[0])
            keys = {f.key for f, task in list(driver.futures.items()) if any(n == number for n, _ in task)}
            for address, running in driver.client.processing().items():
                if keys & set(running):
                    pid = driver.client.run(os.getpid, workers=[address])[address]
                    os.kill(pid, signal.SIGKILL)
                    killed.update(trial=number, pid=pid)
                    return
        time.sleep(0.05)


@pytest.mark.timeout(150)
@pytest.mark.parametrize("pack", [1, 2])
def test_killed_worker_is_retried_and_resumes_from_its_checkpoint(client, tmp_path, pack):
    data = yaml.safe_load(SMOKE.read_text())
    data["trainer"]["eval_freq"] = 250  # a checkpoint at each evaluation: 250, 500, ...
    data["budget"] = {"n_trials": 2, "max_retries": 2}
    data["pack"] = pack
    data["space"].pop("net_arch")  # one shape, so that pack 2 puts both trials in one task
    spec = parse_spec(data)
    study = open_study(spec, tmp_path, None)
    driver = Driver(spec, study, client, tmp_path)
    killed: dict = {}
    killer = threading.Thread(target=kill_worker_after_first_checkpoint, args=(driver, tmp_path, killed))
    killer.start()
    tally = driver.drive()
    killer.join()

    assert killed, "no seed-run was caught running"
    assert killed["pid"] not in client.run(os.getpid).values()  # that worker really died
    assert tally.completed == 2 and tally.failed == 0
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2
    rerun = [study.trials[killed["trial"]]] if pack == 1 else study.trials  # the killed task's trials
    for trial in rerun:
        assert trial.user_attrs["retries"] == 1
        # from the checkpoint, not from scratch (a pack-mate saved with the first evaluation may
        # be a few steps short of 250: each member counts its own transitions)
        assert trial.user_attrs["resumed_from_step"] > 0
        assert trial.user_attrs["env_steps"] == 2000
    frame = load(tmp_path)["trials"].set_index("number")
    assert frame.loc[killed["trial"], "retries"] == 1
    assert frame["retries"].sum() == len(rerun) and (frame["state"] == "COMPLETE").all()
    assert not list(tmp_path.glob("checkpoints/*"))  # removed once the runs ended


@pytest.mark.timeout(90)
def test_reruns_by_an_external_scheduler_are_counted_too(tmp_path):
    """A scheduler we did not start keeps its own allowed-failures (default 3): it reruns the
    task itself, and the trial still records the retry, counted from the task's starts the driver
    heard of (fake trainer, ~6 s a run)."""
    spec = parse_spec({
        "study": "external", "env_id": "CartPole-v1",
        "trainer": {"total_timesteps": 1000, "eval_freq": 100, "train_freq": 600},
        "space": {"learning_rate": {"type": "float", "low": 1e-3, "high": 1e-1, "log": True}},
        "objective": {"metric": "final"}, "budget": {"n_trials": 1}, "parallel": 1, "pruner": {"name": "none"},
    })
    with local_client(2, silence_logs=logging.CRITICAL) as client:
        study = open_study(spec, tmp_path, None)
        driver = Driver(spec, study, client, tmp_path, entry=FAKE)
        killed, problems = [], []

        def kill_once_started() -> None:
            """SIGKILL the worker running the task once the driver has heard that the task started."""
            try:
                wait_until(lambda: any(trial.starts for trial in list(driver.trials.values())),
                           "the driver heard the task start", 30)
                busy = wait_until(lambda: [address for address, keys in client.processing().items() if keys],
                                  "a worker processing the task", 30)
            except AssertionError as error:
                problems.append(str(error))
                return
            pid = client.run(os.getpid, workers=busy)[busy[0]]
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

        killer = threading.Thread(target=kill_once_started)
        killer.start()
        tally = driver.drive()
        killer.join()
    assert not problems and killed, problems
    assert tally.completed == 1
    assert study.trials[0].state == TrialState.COMPLETE and study.trials[0].user_attrs["retries"] == 1
