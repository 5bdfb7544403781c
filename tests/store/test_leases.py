"""Leases on trials (`sweeps.store.leases`) on each storage backend against the real server: a
lease expires once its heartbeat is older than the grace period, not before; exactly one of
several drivers racing to take an expired trial over fails and re-queues it; a driver that shared
the run folder and died loses its trials at once."""

from __future__ import annotations

import functools
import subprocess
import sys
import threading
import time
from pathlib import Path

import optuna
import pytest
import sqlalchemy
from optuna.trial import TrialState

from sweeps.driver import recovery
from sweeps.store import leases
from sweeps.store.optuna_private import storage_of, study_id, trial_id
from sweeps.store.storage import open_storage
from sweeps.store.writer import session_ended
from sweeps.study.spec import Storage

pytestmark = pytest.mark.timeout(120)
TERMS = Storage(heartbeat=1, grace=2, outage=30)
LR = optuna.distributions.FloatDistribution(1e-3, 1e-1, log=True)


def open_study(url: str | None, run_dir: Path) -> optuna.Study:
    """What one driver opens: its own storage object (as another process would) on the study."""
    return optuna.create_study(study_name="leases", storage=open_storage(url, run_dir, TERMS), load_if_exists=True,
                               direction="maximize")


def heartbeat_age(study: optuna.Study, url: str | None, trial: optuna.trial.FrozenTrial) -> float:
    """Seconds since the trial's last heartbeat, by the clock that stamped it (the database's
    on an RDB, this machine's on a journal)."""
    if url is not None and url.startswith(("sqlite", "postgresql")):
        age = ("(julianday('now') - julianday(heartbeat)) * 86400.0" if url.startswith("sqlite")
               else "EXTRACT(EPOCH FROM (LOCALTIMESTAMP - heartbeat))")
        engine = sqlalchemy.create_engine(url)
        with engine.connect() as conn:
            seconds = conn.execute(sqlalchemy.text(f"SELECT {age} FROM trial_heartbeats WHERE trial_id = :id"),
                                   {"id": trial_id(trial)}).scalar_one()
        engine.dispose()
        return float(seconds)
    owner = study.get_trials(deepcopy=False)[trial.number].system_attrs[leases.DRIVER]
    return time.time() - storage_of(study).get_study_system_attrs(study_id(study))[leases.HEARTBEAT + owner]


def test_a_lease_expires_once_its_heartbeat_is_older_than_the_grace_period(storage_url, tmp_path):
    owner, other = open_study(storage_url, tmp_path), open_study(storage_url, tmp_path)
    trial = owner.ask({"learning_rate": LR})
    renew = functools.partial(leases.renew, storage_of(owner), study_id(owner), "owner", [trial_id(trial)])
    renew()  # the driver's heartbeat round as it starts (a journal's is the session's, not the trial's)
    leases.take(storage_of(owner), trial_id(trial), "owner")
    def never(session: str) -> bool:  # no run-folder session is known dead here
        return False

    assert leases.expired(other, TERMS.grace, never, lambda _: False) == []  # just renewed
    deadline = time.monotonic() + 30
    while not (found := leases.expired(other, TERMS.grace, never, lambda _: False)):
        assert time.monotonic() < deadline, "the lease never expired"
        time.sleep(0.2)
    assert [t.number for t in found] == [trial.number]
    assert heartbeat_age(other, storage_url, found[0]) >= TERMS.grace  # not before the grace period
    assert leases.expired(other, TERMS.grace, never, lambda tid: tid == trial_id(trial)) == []  # never a driver's own
    renew()
    assert leases.expired(other, TERMS.grace, never, lambda _: False) == []  # renewed: alive again


def test_exactly_one_of_several_drivers_takes_an_expired_trial_over(storage_url, tmp_path):
    if storage_url is not None and storage_url.startswith("sqlite"):
        pytest.skip("SQLite is for one driver (docs/storages.md): pysqlite reads without a lock, so two "
                    "drivers' FAILs of one trial can both go through")
    owner = open_study(storage_url, tmp_path)
    trials = [owner.ask({"learning_rate": LR}) for _ in range(3)]
    leases.renew(storage_of(owner), study_id(owner), "dead-driver", [trial_id(t) for t in trials])
    for trial in trials:
        leases.take(storage_of(owner), trial_id(trial), "dead-driver")
    drivers = [open_study(storage_url, tmp_path) for _ in range(3)]
    taken, start = [], threading.Barrier(len(drivers))

    def take_over(study: optuna.Study) -> None:
        start.wait()
        taken.append(recovery.take_over(study, TERMS.grace, "dead-driver".__eq__, lambda _: False, lambda line: None))

    threads = [threading.Thread(target=take_over, args=(study,)) for study in drivers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sum(taken) == 3
    final = open_study(storage_url, tmp_path).get_trials(deepcopy=False)
    assert [t.state for t in final[:3]] == [TrialState.FAIL] * 3
    assert all(t.user_attrs["fail_reason"] == recovery.DRIVER_LOST for t in final[:3])
    copies = sorted(t.user_attrs["requeued_from"] for t in final[3:])
    assert copies == [0, 1, 2]  # each re-queued once
    assert all(t.state == TrialState.WAITING for t in final[3:])


HOLD_SESSION = """
import sys, time
from pathlib import Path
import optuna
from sweeps.store.writer import ResultsWriter
ResultsWriter(Path(sys.argv[1]), optuna.create_study(), session=sys.argv[2])
print("holding", flush=True)
time.sleep(600)
"""


def test_the_trials_of_a_driver_that_shared_the_run_folder_are_taken_at_once_when_it_dies(tmp_path):
    study = open_study(None, tmp_path)
    trial = study.ask({"learning_rate": LR})
    leases.take(storage_of(study), trial_id(trial), "gone")
    holder = subprocess.Popen([sys.executable, "-c", HOLD_SESSION, str(tmp_path), "gone"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        def alive(session: str) -> bool:
            return session_ended(tmp_path, session)

        assert not session_ended(tmp_path, "gone")
        assert leases.expired(study, 3600, alive, lambda _: False) == []
    finally:
        holder.kill()
        holder.wait()
    assert session_ended(tmp_path, "gone")
    assert [t.number for t in leases.expired(study, 3600, alive, lambda _: False)] == [trial.number]
    assert not session_ended(tmp_path, "never-here")  # nothing tells: not known dead
