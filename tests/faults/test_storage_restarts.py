"""The storage server goes away mid-sweep (real servers, a real 2-worker LocalCluster, the fake
trainer). PostgreSQL restarted (`pg_ctl restart`) or Redis killed and started again: the driver
waits it out and finishes the budget; no trial is lost, none is left RUNNING. Redis gone for
longer than `storage.outage`: the driver stops with one clear error, its runs stop keeping their
checkpoints, its trials stay RUNNING; once the server is back, the next session takes them over
and finishes the budget."""

from __future__ import annotations

import threading
import time

import pytest
from optuna.trial import TrialState

from sweeps.driver.loop import Driver
from sweeps.driver.recovery import DRIVER_LOST
from sweeps.driver.session import open_study
from sweeps.store.outages import StorageUnreachable
from tests.driver.test_storage_backends import make_spec
from tests.helpers import FAKE

pytestmark = pytest.mark.timeout(180)


def spec_for(outage: float, n_trials: int = 6):
    return make_spec(budget={"n_trials": n_trials}, pruner={"name": "none"},
                     space={"learning_rate": {"type": "float", "low": 1e-3, "high": 1e-1, "log": True}},
                     trainer={"total_timesteps": 1000, "eval_freq": 100, "train_freq": 150},
                     storage={"heartbeat": 1, "grace": 2, "outage": outage})


def when_finished(study, count: int, then, errors: list) -> threading.Thread:
    """A thread that calls `then` once `count` trials of `study` have finished."""
    def watch() -> None:
        try:
            deadline = time.monotonic() + 90
            while sum(t.state.is_finished() for t in study.get_trials(deepcopy=False)) < count:
                assert time.monotonic() < deadline, f"{count} trials did not finish"
                time.sleep(0.1)
            then()
        except Exception as error:  # noqa: BLE001 - the test reports it
            errors.append(error)
    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("server", ["postgresql", "redis"])
def test_a_sweep_waits_out_a_restart_of_its_storage_server(server, request, client, tmp_path):
    if server == "postgresql":
        postgres = request.getfixturevalue("postgres")
        url, restart = postgres.new_database(), postgres.restart
    else:
        redis = request.getfixturevalue("own_redis")
        url = redis.url()

        def restart() -> None:
            redis.kill()
            time.sleep(1.0)  # down for a while, not only a reconnect
            redis.start()
    spec = spec_for(outage=60)
    study = open_study(spec, tmp_path, url)
    errors: list = []
    watcher = when_finished(open_study(spec, tmp_path / "watch", url), 2, restart, errors)
    tally = Driver(spec, study, client, tmp_path, entry=FAKE).drive()
    watcher.join(timeout=30)
    assert not errors and not watcher.is_alive()  # the restart did happen mid-sweep
    states = [t.state for t in open_study(spec, tmp_path / "after", url).trials]
    assert TrialState.RUNNING not in states and TrialState.FAIL not in states
    assert states.count(TrialState.COMPLETE) == tally.finished == 6


def test_an_outage_longer_than_the_limit_stops_the_driver_and_the_next_session_finishes(own_redis, client, tmp_path):
    url = own_redis.url()
    spec = spec_for(outage=3, n_trials=4)
    errors: list = []
    watcher = when_finished(open_study(spec, tmp_path / "watch", url), 1, own_redis.kill, errors)
    study = open_study(spec, tmp_path, url)
    with pytest.raises(StorageUnreachable, match=r"unreachable for \d+ s, longer than storage.outage = 3 s"):
        Driver(spec, study, client, tmp_path, entry=FAKE).drive()
    watcher.join(timeout=30)
    assert not errors
    own_redis.start()
    left = [t.number for t in open_study(spec, tmp_path / "look", url).trials if t.state == TrialState.RUNNING]
    assert left  # the trials in flight stayed RUNNING: not lost, not failed
    study = open_study(spec, tmp_path, url)
    Driver(spec, study, client, tmp_path, entry=FAKE).drive()
    trials = open_study(spec, tmp_path / "after", url).trials
    assert [t.state for t in trials].count(TrialState.COMPLETE) == 4
    assert TrialState.RUNNING not in [t.state for t in trials]
    for number in left:  # taken over and run again
        assert trials[number].user_attrs["fail_reason"] == DRIVER_LOST
        assert [t for t in trials if t.user_attrs.get("requeued_from") == number]
