"""A crashing, hanging or diverging trial is FAIL with its reason; the worker and sweep live on."""

import os

import pytest
from optuna.trial import TrialState

from sweeps.driver.loop import Driver
from sweeps.driver.session import open_study
from sweeps.driver.trial import member_failure
from sweeps.results import load
from sweeps.study.loading import parse_spec
from sweeps.worker.supervise import train_in_child

FAULTY = "tests.fakes.faulty_trainer:train_population"
EXPECTED = {  # gamma -> how the reason starts (and what else it holds)
    0.91: ("child exited with status 1", "faulty trainer: about to exit"),
    0.92: ("child killed by signal SIGSEGV", "about to segfault"),
    0.93: ("child killed by signal SIGKILL", "about to sigkill"),
    0.94: ("timeout", "timeout after 3 s"),
    0.5: ("diverged", "loss became nan"),
}


@pytest.mark.timeout(90)
def test_crashes_hangs_and_divergence_fail_alone(client, tmp_path):
    spec = parse_spec({
        "study": "faults", "env_id": "CartPole-v1",
        "trainer": {"total_timesteps": 1000, "eval_freq": 100, "train_freq": 5},
        "space": {"gamma": {"type": "categorical", "choices": [*EXPECTED, 0.99]}},
        "objective": {"metric": "final"}, "budget": {"n_trials": 2, "max_failed": 10}, "parallel": 2,
        "pruner": {"name": "none"}, "resources": {"time_limit": 3},
    })
    study = open_study(spec, tmp_path, None)
    for gamma in [*EXPECTED, 0.99, 0.99]:
        study.enqueue_trial({"gamma": gamma})
    pids = client.run(os.getpid)
    tally = Driver(spec, study, client, tmp_path, entry=FAULTY).drive()

    assert client.run(os.getpid) == pids  # no worker died or restarted
    assert tally.completed == 2 and tally.failed == len(EXPECTED)
    assert [t.state for t in study.trials if t.params["gamma"] == 0.99] == [TrialState.COMPLETE] * 2
    faulty = {t.params["gamma"]: t for t in study.trials if t.params["gamma"] != 0.99}
    assert sorted(faulty) == sorted(EXPECTED)
    for gamma, (start, detail) in EXPECTED.items():
        reason = faulty[gamma].user_attrs["fail_reason"]
        assert faulty[gamma].state == TrialState.FAIL
        assert reason.startswith(f"seed 0: {start}") and detail in reason, reason
    frame = load(tmp_path)["trials"]
    assert (frame["state"] != "RUNNING").all()
    assert frame.loc[frame["state"] == "FAIL", "fail_reason"].str.len().gt(0).all()


@pytest.mark.timeout(90)
def test_the_real_trainer_going_nan_is_diverged():
    config = {"total_timesteps": 1500, "net_arch": [32], "learning_starts": 200, "train_freq": 4,
              "eval_freq": 500, "n_eval_episodes": 3, "buffer_size": 1000, "batch_size": 32}
    outcome = train_in_child([config], emit=lambda event: None, stopped_members=lambda: (),
                        entry="tests.fakes.faulty_trainer:nan_train_population")
    assert outcome["status"] == "ok"
    reason = member_failure(outcome["results"][0])
    assert reason.startswith("diverged: loss nan"), reason
