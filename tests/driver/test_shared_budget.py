"""Two drivers grow one study at once: on PostgreSQL (each with its own run folder) and on the
journal of one shared run folder. The second starts while the first has trials running and
leaves them alone (their leases are alive); `budget.n_trials` counts the study's finished
trials whichever driver ran them, so together they stop at it (one more at most: two drivers
asking the last trial at the same moment). A real 2-worker LocalCluster, the fake trainer."""

from __future__ import annotations

import threading
import time

import optuna
import pytest
from optuna.trial import TrialState

from sweeps.driver.loop import Driver
from sweeps.driver.recovery import DRIVER_LOST
from sweeps.driver.session import open_study
from tests.driver.test_storage_backends import make_spec
from tests.helpers import FAKE

pytestmark = pytest.mark.timeout(180)


@pytest.mark.parametrize("backend", ["postgresql", "journal"])
def test_two_drivers_share_one_budget_and_leave_each_others_trials_alone(backend, request, client, tmp_path):
    url = request.getfixturevalue("postgres").new_database() if backend == "postgresql" else None
    folders = [tmp_path / "a", tmp_path / "b"] if url else [tmp_path / "shared"] * 2
    spec = make_spec(budget={"n_trials": 8}, pruner={"name": "none"}, storage={"heartbeat": 1, "grace": 4},
                     space={"learning_rate": {"type": "float", "low": 1e-3, "high": 1e-1, "log": True}},
                     trainer={"total_timesteps": 1000, "eval_freq": 100, "train_freq": 100})
    studies = [open_study(spec, folder, url) for folder in folders]
    tallies, errors = {}, []

    def drive(k: int) -> None:
        try:
            tallies[k] = Driver(spec, studies[k], client, folders[k], entry=FAKE).drive()
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)

    first = threading.Thread(target=drive, args=(0,))
    first.start()
    deadline = time.monotonic() + 60
    while not studies[1].get_trials(deepcopy=False, states=(TrialState.RUNNING,)):  # the first has trials running
        assert first.is_alive() and time.monotonic() < deadline
        time.sleep(0.05)
    second = threading.Thread(target=drive, args=(1,))
    second.start()
    for thread in (first, second):
        thread.join(timeout=150)
    assert not errors and len(tallies) == 2
    trials = studies[1].get_trials(deepcopy=False)
    states = [t.state for t in trials]
    assert TrialState.FAIL not in states and TrialState.RUNNING not in states  # nobody took a live trial
    assert 8 <= states.count(TrialState.COMPLETE) <= 9
    assert tallies[0].completed >= 1 and tallies[1].completed >= 1  # both did their part
    owners = {t.system_attrs["dqn_sweep:driver"] for t in trials}
    assert len(owners) == 2


def test_a_lost_trial_re_queued_is_run_even_once_the_budget_is_met(client, tmp_path):
    # Another driver's trial was lost after this study's budget was counted with it running: its
    # copy is owed. The budget (2 finished) is met, yet a driver runs the copy to the end.
    spec = make_spec(budget={"n_trials": 2}, pruner={"name": "none"},
                     space={"learning_rate": {"type": "float", "low": 1e-3, "high": 1e-1, "log": True}},
                     trainer={"total_timesteps": 1000, "eval_freq": 100, "train_freq": 100})
    study = open_study(spec, tmp_path, None)
    for value in (1.0, 2.0):
        study.add_trial(optuna.trial.create_trial(params={"learning_rate": 0.01}, distributions={
            "learning_rate": optuna.distributions.FloatDistribution(1e-3, 1e-1, log=True)}, value=value))
    study.enqueue_trial({"learning_rate": 0.02}, user_attrs={"requeued_from": 0, "requeue_reason": DRIVER_LOST})
    tally = Driver(spec, study, client, tmp_path, entry=FAKE).drive()
    trials = study.get_trials(deepcopy=False)
    assert tally.completed == 1 and len(trials) == 3
    assert trials[2].state == TrialState.COMPLETE and trials[2].params == {"learning_rate": 0.02}
