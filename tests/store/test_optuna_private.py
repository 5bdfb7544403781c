"""Each use of Optuna's private API (`sweeps.store.optuna_private`) still does what dqn-sweep
relies on, and a changed one fails with a message that says so."""

import optuna
import pytest
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from sweeps.store import optuna_private
from sweeps.store.journal import RunStorage

optuna.logging.set_verbosity(optuna.logging.WARNING)


def test_tell_stores_the_value_and_state():
    study = optuna.create_study(direction="maximize")
    trial = study.ask()
    optuna_private.tell(study, trial, 3.5)
    pruned = study.ask()
    optuna_private.tell(study, pruned.number, state=TrialState.PRUNED)
    assert [(t.state, t.value) for t in study.trials] == [(TrialState.COMPLETE, 3.5), (TrialState.PRUNED, None)]


def test_tell_tolerates_the_grid_samplers_stop_when_the_grid_is_exhausted():
    study = optuna.create_study(sampler=optuna.samplers.GridSampler({"x": [1]}))
    first = study.ask()
    first.suggest_categorical("x", [1])
    optuna_private.tell(study, first, 1.0)  # the grid is now exhausted: Optuna calls study.stop()
    second = study.ask()
    second.suggest_categorical("x", [1])
    with pytest.raises(RuntimeError, match="Study.stop"):  # what Study.tell's body does outside optimize
        optuna_private.tell_body(study, second, 2.0, None)
    assert [(t.state, t.value) for t in study.trials] == [(TrialState.COMPLETE, 1.0), (TrialState.COMPLETE, 2.0)]


def test_storage_of_and_trial_id_reach_a_trial_through_the_storage():
    study = optuna.create_study()
    study.ask()
    trial = study.ask()
    stored = optuna_private.storage_of(study).get_trial(optuna_private.trial_id(trial))
    assert stored.number == trial.number == 1
    assert optuna_private.trial_id(study.trials[1]) == optuna_private.trial_id(trial)


def test_fixed_params_are_what_enqueue_trial_fixed():
    study = optuna.create_study()
    study.enqueue_trial({"x": 2.5, "layers": "[64, 64]"})
    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert optuna_private.fixed_params(waiting[0]) == {"x": 2.5, "layers": "[64, 64]"}
    study.ask()
    assert optuna_private.fixed_params(study.get_trials(states=(TrialState.RUNNING,))[0]) == {"x": 2.5, "layers": "[64, 64]"}


def test_journal_file_offsets_and_lock(tmp_path):
    path = tmp_path / "journal.log"
    backend = JournalFileBackend(str(path))
    assert optuna_private.journal_file(backend) == str(path)
    backend.append_logs([{"op_code": 0, "worker_id": "w", "study_name": "s", "directions": [1]}])
    assert optuna_private.journal_offset(backend, 1) is None  # not read yet
    list(backend.read_logs(0))
    assert optuna_private.journal_offset(backend, 1) == path.stat().st_size
    with optuna_private.journal_file_lock(backend):
        assert any(p.name.startswith("journal.log") and p != path for p in tmp_path.iterdir())  # Optuna's lock file
    assert [p.name for p in tmp_path.iterdir()] == ["journal.log"]


def test_replayed_trials_are_the_studys_in_creation_order(tmp_path):
    storage = RunStorage(str(tmp_path / "journal.log"))
    study = optuna.create_study(storage=storage, study_name="s")
    other = optuna.create_study(storage=storage, study_name="other")
    for _ in range(3):
        study.ask()
        other.ask()
    with optuna_private.storage_lock(storage):
        ids, trials = optuna_private.replayed_trials(storage, study._study_id)
    assert [trials[i].number for i in ids] == [0, 1, 2]
    assert [optuna_private.trial_id(t) for t in study.trials] == list(ids)
    with pytest.raises(KeyError), optuna_private.storage_lock(storage):
        optuna_private.replayed_trials(storage, 12345)


def test_a_changed_internal_fails_with_a_clear_message():
    unopened = JournalFileBackend.__new__(JournalFileBackend)  # has none of the attributes
    with pytest.raises(optuna_private.OptunaInternalsChanged, match=r"JournalFileBackend\._file_path .*optuna<6"):
        optuna_private.journal_file(unopened)
    with pytest.raises(optuna_private.OptunaInternalsChanged, match=r"optuna \d+\.\d+.*Study\._storage"):
        optuna_private.storage_of(object())


def test_study_id_is_what_storage_calls_take(tmp_path):
    storage = RunStorage(str(tmp_path / "journal.log"))
    optuna.create_study(storage=storage, study_name="first")
    study = optuna.create_study(storage=storage, study_name="second")
    assert storage.get_study_name_from_id(optuna_private.study_id(study)) == "second"


def test_cached_rdb_is_optunas_cache_in_front_of_the_rdb(tmp_path):
    rdb = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'c.db'}")
    cached = optuna_private.cached_rdb(rdb)
    assert cached is not rdb and cached._backend is rdb
    study = optuna.create_study(storage=cached, study_name="c")
    study.ask()
    assert optuna_private.storage_of(study) is cached  # create_study takes it as it is


def test_stale_trial_ids_are_the_running_trials_whose_heartbeat_is_older_than_the_grace_period(tmp_path):
    import time
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rdb = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 's.db'}", heartbeat_interval=1, grace_period=1)
        study = optuna.create_study(storage=optuna_private.cached_rdb(rdb), study_name="s")
        beating, _silent, done = study.ask(), study.ask(), study.ask()  # the second never beats
    storage, study_id = optuna_private.storage_of(study), optuna_private.study_id(study)
    for trial in (beating, done):
        storage.record_heartbeat(optuna_private.trial_id(trial))
    optuna_private.tell(study, done, 1.0)
    assert optuna_private.stale_trial_ids(storage, study_id) == []
    deadline = time.monotonic() + 30
    while not (stale := optuna_private.stale_trial_ids(storage, study_id)):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    # never a trial that recorded no heartbeat, nor a finished one
    assert stale == [optuna_private.trial_id(beating)]


def test_sync_journal_reads_what_was_appended_and_raises_a_refused_write_of_this_thread(tmp_path):
    storage = RunStorage(str(tmp_path / "journal.log"))
    study = optuna.create_study(storage=storage, study_name="sync")
    trial = study.ask()
    other = RunStorage(str(tmp_path / "journal.log"))  # another driver finishes the trial
    other.set_trial_state_values(optuna_private.trial_id(trial), TrialState.FAIL)
    with optuna_private.storage_lock(storage):
        optuna_private.sync_journal(storage)
        assert storage._replay_result._trials[optuna_private.trial_id(trial)].state == TrialState.FAIL
    late = {"op_code": 7, "worker_id": storage._replay_result.worker_id,  # a user attr, from this thread
            "trial_id": optuna_private.trial_id(trial), "user_attr": {"late": 1}}
    with pytest.raises(optuna.exceptions.UpdateFinishedTrialError), optuna_private.storage_lock(storage):
        storage.journal.append_logs([late])
        optuna_private.sync_journal(storage)
