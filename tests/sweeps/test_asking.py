"""Asking: a new trial's params go to the run folder's journal with its attributes, as one
append, once a trial of the session has passed the storage's check of its params."""

import threading

import pytest

from sweeps.asking import Asker
from sweeps.pace import Pace
from sweeps.session import open_study
from sweeps.tally import Tally
from tests.sweeps.test_driver import make_spec


@pytest.mark.parametrize(("sampler", "together"), [("random", True), ("tpe", False)])
def test_params_and_attributes_go_as_one_append_after_the_first_ask(client, tmp_path, sampler, together):
    space = {"learning_rate": {"type": "float", "low": 1e-3, "high": 1e-1, "log": True},
             "gamma": {"type": "float", "low": 0.9, "high": 0.99},
             "net_arch": {"type": "categorical", "choices": [[32], [64]]}}
    spec = make_spec(space=space, budget={"n_trials": 10}, sampler={"name": sampler, "seed": 0})
    study = open_study(spec, tmp_path, None)
    asker = Asker(spec, study, client, "topic", Tally(10, None), Pace(sampler), lambda line: None)
    asker.seed_sampler()
    journal, appends = study._storage.journal, []
    append_logs = journal.append_logs

    def counted(logs):  # a write that reaches the file, not one held for the block's end
        appends.extend([len(logs)] if journal.holder != threading.get_ident() else [])
        append_logs(logs)

    journal.append_logs = counted
    per_ask = []
    for _ in range(3):
        appends.clear()
        run = asker.ask()
        per_ask.append(list(appends))
        assert set(run.trial.params) == set(space)
    # The first ask: the trial's creation, each param, the attributes. Then, with a blind sampler,
    # the creation and one append of the 3 params and 3 attributes.
    assert per_ask[0] == [1, 1, 1, 1, 3]
    assert per_ask[1:] == ([[1, 6]] * 2 if together else [[1, 1, 1, 1, 3]] * 2)
    stored = study.trials[2]
    assert set(stored.params) == set(space) and {"seeds", "sampler_seed", "finished_when_asked"} <= set(stored.user_attrs)
