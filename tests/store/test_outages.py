"""A driver's storage waits out its server's outage (`sweeps.store.outages`): calls made while
PostgreSQL restarts or Redis is killed and started again go through once the server is back,
and an outage longer than `storage.outage` ends with one clear error."""

from __future__ import annotations

import threading
import time

import optuna
import pytest
from optuna.trial import TrialState

from sweeps.store.outages import StorageUnreachable
from sweeps.store.storage import open_storage
from sweeps.study.spec import Storage

pytestmark = pytest.mark.timeout(120)
LR = optuna.distributions.FloatDistribution(1e-3, 1e-1, log=True)


def ask_and_tell(study: optuna.Study, until: threading.Event, done: list[int]) -> None:
    while not until.is_set():
        trial = study.ask({"learning_rate": LR})
        trial.report(1.0, 1)
        study.tell(trial, 1.0)
        done.append(trial.number)


def wait_for(condition, worker: threading.Thread, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert worker.is_alive() and time.monotonic() < deadline
        time.sleep(0.05)


@pytest.mark.parametrize("server", ["postgresql", "redis"])
def test_a_sweep_goes_on_through_a_restart_of_its_server(server, request, tmp_path):
    if server == "postgresql":
        postgres = request.getfixturevalue("postgres")
        url, restart = postgres.new_database(), postgres.restart
    else:
        redis = request.getfixturevalue("own_redis")
        url = redis.url()

        def restart() -> None:
            redis.kill()
            redis.start()
    study = optuna.create_study(study_name="outage", storage=open_storage(url, tmp_path, Storage(outage=60)))
    done: list[int] = []
    stop = threading.Event()
    worker = threading.Thread(target=ask_and_tell, args=(study, stop, done))
    worker.start()
    try:
        wait_for(lambda: len(done) >= 3, worker)  # the sweep is under way
        restart()
        after = len(done)
        wait_for(lambda: len(done) >= after + 3, worker)  # and goes on
    finally:
        stop.set()
        worker.join(timeout=60)
    again = optuna.load_study(study_name="outage", storage=open_storage(url, tmp_path))  # a reader, after
    states = [t.state for t in again.trials]
    assert states.count(TrialState.COMPLETE) == len(done) and states[:len(done)] == [TrialState.COMPLETE] * len(done)


def test_an_outage_longer_than_storage_outage_stops_with_a_clear_error(own_redis, tmp_path):
    url = own_redis.url()
    study = optuna.create_study(study_name="gone", storage=open_storage(url, tmp_path, Storage(outage=2)))
    study.ask()
    own_redis.kill()
    began = time.monotonic()
    with pytest.raises(StorageUnreachable) as raised:
        study.ask()
    waited = time.monotonic() - began
    message = str(raised.value)
    assert message.startswith(f"storage {url}: unreachable for ") and "storage.outage = 2 s" in message
    assert "ConnectionError" in message
    assert waited >= 2  # it did wait out the outage it was given
