"""Two drivers grow one study at once: on PostgreSQL (each with its own run folder) and on the
journal of one shared run folder. The second starts while the first has trials running and
leaves them alone (their leases are alive); `budget.n_trials` counts the study's finished
trials whichever driver ran them, so together they stop at it (one more at most: two drivers
asking the last trial at the same moment). A real 2-worker LocalCluster, the fake trainer."""

from __future__ import annotations

import threading
import time

import pytest
from optuna.trial import TrialState

from sweeps.driver.loop import Driver
from sweeps.driver.session import open_study
from tests.driver.test_storage_backends import FAKE, make_spec

pytestmark = pytest.mark.timeout(180)


@pytest.mark.parametrize("backend", ["postgresql", "journal"])
def test_two_drivers_share_one_budget_and_leave_each_others_trials_alone(backend, request, local_client, tmp_path):
    url = request.getfixturevalue("postgres").new_database() if backend == "postgresql" else None
    folders = [tmp_path / "a", tmp_path / "b"] if url else [tmp_path / "shared"] * 2
    spec = make_spec(budget={"n_trials": 8}, pruner={"name": "none"}, storage={"heartbeat": 1, "grace": 4},
                     space={"learning_rate": {"type": "float", "low": 1e-3, "high": 1e-1, "log": True}},
                     trainer={"total_timesteps": 1000, "eval_freq": 100, "train_freq": 100})
    studies = [open_study(spec, folder, url) for folder in folders]
    tallies, errors = {}, []

    def drive(k: int) -> None:
        try:
            tallies[k] = Driver(spec, studies[k], local_client, folders[k], entry=FAKE).drive()
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
