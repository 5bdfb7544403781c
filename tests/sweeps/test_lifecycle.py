"""Sessions end and start cleanly: Ctrl-C twice loses no trial, stop events are released on the
scheduler, checkpoint folders go with their trials, and each session on a study seeds its own
sampler. A real LocalCluster and journal storage; interrupts are real SIGINTs in this process."""

import json
import os
import signal
import threading
import time

import optuna
import pytest
from optuna.trial import TrialState

from sweeps.driver.loop import Driver
from sweeps.driver.session import open_study
from sweeps.study.loading import parse_spec
from tests.sweeps.conftest import FAKE

pytestmark = pytest.mark.timeout(120)
LR = optuna.distributions.FloatDistribution(1e-3, 1e-1, log=True)


def make_spec(**changes):
    data = {
        "study": "life", "env_id": "CartPole-v1",
        "trainer": {"total_timesteps": 500, "eval_freq": 100, "train_freq": 2},
        "space": {"learning_rate": {"type": "float", "low": 1e-3, "high": 1e-1, "log": True}},
        "objective": {"metric": "final"}, "budget": {"n_trials": 2}, "parallel": 2, "pruner": {"name": "none"},
    }
    return parse_spec({**data, **changes})


def interrupted_session(spec, client, run_dir):
    """A driver interrupted by SIGINT once its two trials run; returns the numbers it asked."""
    study = open_study(spec, run_dir, None)
    driver = Driver(spec, study, client, run_dir, entry=FAKE)
    asked = []

    def interrupt_when_running():
        deadline = time.monotonic() + 30
        while (len(driver.futures) < 2 or len(driver.trials) < 2) and time.monotonic() < deadline:
            time.sleep(0.05)
        while len(list(run_dir.glob("checkpoints/*/*/state.json"))) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)  # both runs have checkpointed: there is something to resume
        asked.extend(sorted(driver.trials))
        os.kill(os.getpid(), signal.SIGINT)

    watcher = threading.Thread(target=interrupt_when_running)
    watcher.start()
    with pytest.raises(KeyboardInterrupt):
        driver.drive()
    watcher.join()
    return asked


def test_ctrl_c_twice_loses_no_trial(client, tmp_path):
    slow = make_spec(trainer={"total_timesteps": 1000, "eval_freq": 100, "train_freq": 1000})  # ~10 s a run
    first = interrupted_session(slow, client, tmp_path)
    second = interrupted_session(slow, client, tmp_path)
    study = open_study(slow, tmp_path, None)
    assert second == [2, 3]  # the re-queued trials, popped by the second session
    assert [t.state for t in study.trials] == [TrialState.FAIL] * 4 + [TrialState.WAITING] * 2

    tally = Driver(make_spec(), study, client, tmp_path, entry=FAKE).drive()
    trials = study.trials
    assert tally.completed == 2 and TrialState.RUNNING not in [t.state for t in trials]
    assert [t.user_attrs.get("fail_reason") for t in trials[:4]] == ["interrupted"] * 4
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert sorted(t.params["learning_rate"] for t in complete) == sorted(
        trials[n].params["learning_rate"] for n in first)  # the first session's params were re-run
    assert sorted(t.user_attrs["requeued_from"] for t in complete) == first  # their checkpoints' owners
    # The cluster outlived both drivers: the runs they stopped kept their checkpoints, resumed here.
    assert all(t.user_attrs["resumed_from_step"] >= 100 for t in complete)


def events_of(client, topic):
    names = client.run_on_scheduler(lambda dask_scheduler: list(dask_scheduler.extensions["events"]._events))
    return [name for name in names if str(name).startswith(topic)]


def test_stop_events_are_released_when_trials_end(client, tmp_path):
    spec = make_spec(
        space={"learning_rate": {"type": "float", "low": 1e-3, "high": 1e-1, "log": True},
               "gamma": {"type": "categorical", "choices": [0.99, 0.5]}},
        trainer={"total_timesteps": 1000, "eval_freq": 100, "train_freq": 100}, parallel=1,
        budget={"n_trials": 3, "max_failed": 5},
        pruner={"name": "median", "options": {"n_startup_trials": 1}},
    )
    study = open_study(spec, tmp_path, None)
    for lr, gamma in [(0.1, 0.99), (0.001, 0.99), (0.1, 0.5), (0.1, 0.99)]:  # complete, pruned, fails, complete
        study.enqueue_trial({"learning_rate": lr, "gamma": gamma})
    driver = Driver(spec, study, client, tmp_path, entry=FAKE)
    driver.drive()
    assert [t.state for t in study.trials] == [TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL,
                                               TrialState.COMPLETE]
    assert events_of(client, driver.topic) == []


def plant_checkpoint(folder, lr, seed, step, total):
    """A save of the fake trainer: one member that evaluated up to `step`."""
    folder.mkdir(parents=True)
    evals = [{"event": "eval", "member": 0, "step": s, "env_steps": s, "final": False,
              "mean_return": 1000 * lr * s / total + seed} for s in range(100, step + 1, 100)]
    (folder / "state.json").write_text(json.dumps({"members": [{"env_steps": step, "evals": evals}]}))


def test_checkpoint_folders_go_with_their_trials(client, tmp_path):
    spec = make_spec()
    study = open_study(spec, tmp_path, None)
    Driver(spec, study, client, tmp_path, entry=FAKE).drive()
    lost = study.ask({"learning_rate": LR})  # a dead driver's trial, which had checkpointed
    lr = lost.params["learning_rate"]
    root = tmp_path / "checkpoints"
    plant_checkpoint(root / f"trial-{lost.number}" / "seed-0", lr, 0, 300, 500)
    (root / f"trial-{lost.number}" / "older-run").mkdir()  # a folder the task itself does not remove
    (root / "trial-0" / "seed-0").mkdir(parents=True)  # trial 0 is COMPLETE: nothing resumes this
    (root / "trial-1+trial-9" / "seed-0").mkdir(parents=True)

    study = open_study(spec, tmp_path, None)
    # Without a lease of its own, the lost trial is taken over `grace` seconds after it started.
    again_spec = make_spec(budget={"n_trials": 3}, storage={"heartbeat": 1, "grace": 2})
    Driver(again_spec, study, client, tmp_path, entry=FAKE).drive()
    (again,) = [t for t in study.trials if t.user_attrs.get("requeued_from") == lost.number]
    assert again.state == TrialState.COMPLETE and again.value == pytest.approx(1000 * lr)
    assert again.user_attrs["resumed_from_step"] == 300  # its folder was kept at start-up ...
    assert list(root.iterdir()) == []  # ... and removed when it ended, like the orphans at start-up


def test_each_session_on_a_study_draws_its_own_trials(client, tmp_path):
    spec = make_spec(budget={"n_trials": 3}, sampler={"name": "tpe", "seed": 7})

    def session(run_dir, n_trials):
        study = open_study(spec, run_dir, None)
        Driver(make_spec(budget={"n_trials": n_trials}, sampler={"name": "tpe", "seed": 7}),
               study, client, run_dir, entry=FAKE).drive()
        return [(t.params["learning_rate"], t.user_attrs.get("sampler_seed")) for t in study.trials]

    fresh = session(tmp_path / "a", 3)
    assert session(tmp_path / "b", 3) == fresh  # a fresh study with the same seed: the same trials
    resumed = session(tmp_path / "a", 6)[3:]
    assert not {lr for lr, _ in resumed} & {lr for lr, _ in fresh}
    assert {seed for _, seed in fresh} == {7}
    (seed,) = {seed for _, seed in resumed}
    assert seed != 7
    assert session(tmp_path / "c", 3) == fresh and session(tmp_path / "c", 6)[3:] == resumed  # reproducible
