"""The run folder's journal (`sweeps.store.journal`): Optuna's format, seen by readers at once,
nothing lost when the writer is killed, and synced to disk on a debounce rather than at every
write."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import types

import optuna
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

from sweeps.store import journal
from sweeps.store.journal import writes_together
from sweeps.store.optuna_private import storage_of
from sweeps.store.storage import journal_path, open_storage
from tests.helpers import ROOT

WRITER = textwrap.dedent("""
    import sys, time, optuna
    from sweeps.store.storage import open_storage
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name="killed", storage=open_storage(None, sys.argv[1]))
    for k in range(int(sys.argv[2])):
        trial = study.ask()
        trial.set_user_attr("k", k)
        trial.report(float(k), 1)
        study.tell(trial, trial.suggest_float("x", 0, 1))
    print("told", flush=True)
    time.sleep(60)
""")


def test_a_killed_writer_loses_no_write(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), "40"], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "told"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    reader = JournalStorage(JournalFileBackend(str(journal_path(tmp_path))))  # Optuna's own reader
    trials = optuna.load_study(study_name="killed", storage=reader).trials
    assert [t.user_attrs["k"] for t in trials] == list(range(40))
    assert all(t.state.name == "COMPLETE" and t.intermediate_values == {1: float(t.number)} for t in trials)


def test_readers_see_each_write_at_once_and_syncs_are_debounced(tmp_path, monkeypatch):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    syncs = []
    fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: syncs.append(fd) or fsync(fd))  # counts, still syncs
    now = [1000.0]
    monkeypatch.setattr(journal, "time", types.SimpleNamespace(monotonic=lambda: now[0]))  # the journal's clock
    study = optuna.create_study(study_name="seen", storage=open_storage(None, tmp_path))
    reader = optuna.load_study(study_name="seen", storage=JournalStorage(JournalFileBackend(str(journal_path(tmp_path)))))
    for k in range(30):
        trial = study.ask()
        trial.set_user_attr("k", k)
        study.tell(trial, float(k))
        seen = reader.get_trials(deepcopy=False)
        assert len(seen) == k + 1 and seen[-1].value == float(k) and seen[-1].user_attrs == {"k": k}
    assert len(syncs) == 1  # 91 writes within one interval: the first was synced
    now[0] += journal.SYNC_EVERY_S
    study.tell(study.ask(), 30.0)
    assert len(syncs) == 2  # the interval is over: the next write is synced, the one after it is not


def test_writes_together_reach_readers_as_one_append_after_the_block(tmp_path):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name="together", storage=open_storage(None, tmp_path))
    reader = optuna.load_study(study_name="together", storage=JournalStorage(JournalFileBackend(str(journal_path(tmp_path)))))
    trial, other = study.ask(), study.ask()
    with writes_together(trial.storage):
        for k in range(6):
            trial.set_user_attr(f"a{k}", k)
        with writes_together(trial.storage):  # a block inside another joins it
            for k in range(6, 12):
                trial.set_user_attr(f"a{k}", k)
        thread = threading.Thread(target=other.set_user_attr, args=("other", 1))  # another thread: at once
        thread.start()
        thread.join()
        assert reader.get_trials(deepcopy=False)[1].user_attrs == {"other": 1}
        assert reader.get_trials(deepcopy=False)[0].user_attrs == {}  # held
        size = journal_path(tmp_path).stat().st_size
    assert journal_path(tmp_path).stat().st_size > size
    assert reader.get_trials(deepcopy=False)[0].user_attrs == {f"a{k}": k for k in range(12)}
    lines = journal_path(tmp_path).read_text().splitlines()
    assert [json.loads(line)["user_attr"] for line in lines[-12:]] == [{f"a{k}": k} for k in range(12)]
    study.tell(trial, 1.0)
    assert study.trials[0].user_attrs["a11"] == 11 and study.trials[0].state.name == "COMPLETE"


def test_a_block_inside_another_that_raises_leaves_the_writes_to_the_outer_one(tmp_path):
    study = optuna.create_study(study_name="nested", storage=open_storage(None, tmp_path))
    trial = study.ask()
    size = journal_path(tmp_path).stat().st_size
    with writes_together(trial.storage):
        trial.set_user_attr("a", 1)
        with pytest.raises(KeyError), writes_together(trial.storage):
            trial.set_user_attr("b", 2)
            raise KeyError("b")
        assert journal_path(tmp_path).stat().st_size == size  # still held
    lines = journal_path(tmp_path).read_text().splitlines()
    assert [json.loads(line)["user_attr"] for line in lines[-2:]] == [{"a": 1}, {"b": 2}]
    assert study.trials[0].user_attrs == {"a": 1, "b": 2}


def test_writes_together_on_other_storages_write_one_by_one():
    study = optuna.create_study()  # in memory
    trial = study.ask()
    with writes_together(trial.storage):
        trial.set_user_attr("a", 1)
        assert study.trials[0].user_attrs == {"a": 1}


def test_the_search_for_waiting_trials_finds_what_optunas_finds_without_scanning_finished_ones(tmp_path):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name="waiting", storage=open_storage(None, tmp_path))
    other = optuna.load_study(study_name="waiting", storage=open_storage(None, tmp_path))  # another session
    optunas = JournalStorage(JournalFileBackend(str(journal_path(tmp_path))))
    reference = optuna.load_study(study_name="waiting", storage=optunas)
    for k in range(3):
        study.tell(study.ask(), float(k))
    running = study.ask()  # trial 3 stays RUNNING: the search must start at or before it
    for k in range(27):
        study.tell(study.ask(), float(k))
    other.enqueue_trial({"x": 0.25})
    for k in range(5):
        study.tell(study.ask(), float(k))  # the first of these takes the WAITING trial (31)
    other.enqueue_trial({"x": 0.75})
    other.enqueue_trial({"x": 0.5})
    storage = storage_of(study)
    study_id = storage.get_study_id_from_name(study.study_name)
    waiting = storage.get_all_trials(study_id, states=(optuna.trial.TrialState.WAITING,))
    expected = reference.get_trials(states=(optuna.trial.TrialState.WAITING,))
    assert [t.number for t in waiting] == [t.number for t in expected] == [36, 37]
    assert storage.settled[study_id] == running.number == 3  # the first trial not finished
    study.tell(running, 0.0)
    assert [t.suggest_float("x", 0, 1) for t in (study.ask(), study.ask())] == [0.75, 0.5]  # popped in order
    assert storage.get_all_trials(study_id, states=(optuna.trial.TrialState.WAITING,)) == []
    assert storage.settled[study_id] == 36  # all before the two asks are finished now
    with pytest.raises(KeyError):
        storage.get_all_trials(study_id + 1, states=(optuna.trial.TrialState.WAITING,))
