"""The run folder's journal reads a group of writes back at the block's end, in the writing
thread (`RunStorage.together`): a write the storage refuses is raised there, after the rest of
the group is applied, and another thread reading the journal meanwhile cannot swallow it."""

import threading

import optuna
import pytest
from optuna.trial import TrialState

from sweeps.store.journal import RunStorage, writes_together
from sweeps.store.optuna_private import trial_id


def test_a_refused_write_in_a_group_is_raised_at_its_end_and_the_rest_applied(tmp_path):
    storage = RunStorage(str(tmp_path / "journal.log"))
    study = optuna.create_study(storage=storage, study_name="together")
    taken, kept = study.ask(), study.ask()
    RunStorage(str(tmp_path / "journal.log")).set_trial_state_values(trial_id(taken), TrialState.FAIL)  # another driver
    reader = threading.Thread(target=lambda: [storage.get_all_trials(0) for _ in range(200)])
    with pytest.raises(optuna.exceptions.UpdateFinishedTrialError), writes_together(storage):
        reader.start()  # another thread of this process reads the journal all along
        taken.report(1.0, 1)
        kept.report(2.0, 1)
        kept.set_user_attr("after", True)
    reader.join()
    stored = RunStorage(str(tmp_path / "journal.log"))  # as the file has it (Optuna's Trial caches what it reports)
    assert stored.get_trial(trial_id(kept)).intermediate_values == {1: 2.0}
    assert stored.get_trial(trial_id(kept)).user_attrs == {"after": True}
    assert stored.get_trial(trial_id(taken)).intermediate_values == {}
    assert storage.get_trial(trial_id(kept)).user_attrs == {"after": True}  # this storage read it all back
