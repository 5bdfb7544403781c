"""Asking: a new trial's params go to the run folder's journal with its attributes, as one
append, once a trial of the session has passed the storage's check of its params."""

import threading

import pytest

from sweeps.driver.asking import Asker
from sweeps.driver.heartbeat import Heartbeat
from sweeps.driver.pace import Pace
from sweeps.driver.session import open_study
from sweeps.driver.tally import Tally
from tests.sweeps.test_driver import make_spec

SPACE = {"learning_rate": {"type": "float", "low": 1e-3, "high": 1e-1, "log": True},
         "gamma": {"type": "float", "low": 0.9, "high": 0.99},
         "net_arch": {"type": "categorical", "choices": [[32], [64]]}}
GRID = {"learning_rate": {"type": "float", "low": 0.001, "high": 0.003, "step": 0.001},
        "gamma": {"type": "float", "low": 0.9, "high": 0.99, "step": 0.09},
        "net_arch": {"type": "categorical", "choices": [[32], [64]]}}


@pytest.mark.parametrize(("sampler", "space", "together"),
                         [("random", SPACE, True), ("qmc", SPACE, True), ("grid", GRID, True), ("tpe", SPACE, False)])
def test_params_and_attributes_go_as_one_append_after_the_first_ask(client, tmp_path, sampler, space, together):
    spec = make_spec(space=space, budget={"n_trials": 10}, sampler={"name": sampler, "seed": 0})
    study = open_study(spec, tmp_path, None)
    asker = Asker(spec, study, client, "topic", Tally(10, None), Pace(sampler), lambda line: None, "session",
                  Heartbeat(study._storage, study._study_id, "session", 10, lambda message: None))
    asker.seed_sampler()
    journal, appends = study._storage.journal, []
    append_logs = journal.append_logs

    def counted(logs):  # a write that reaches the file (not one held for the block's end): its params and attributes
        if journal.holder != threading.get_ident():
            ops = "".join(sorted("P" if "param_name" in log else "A" if "user_attr" in log else "" for log in logs))
            appends.extend([ops] if ops else [])
        append_logs(logs)

    journal.append_logs = counted
    per_ask = []
    for _ in range(4):
        appends.clear()
        run = asker.ask()
        per_ask.append(list(appends))
        assert set(run.optuna_trial.params) == set(space)
    # The first ask writes each param on its own, then the 3 attributes as one append; then, with
    # a blind sampler, the 3 params and 3 attributes go as one append (with what the sampler wrote).
    assert per_ask[0] == ["P", "P", "P", "AAA"]
    assert per_ask[1:] == [["AAAPPP"] if together else ["P", "P", "P", "AAA"]] * 3
    stored = study.trials[3]
    assert set(stored.params) == set(space)
    assert {"seeds", "sampler_seed", "finished_when_asked"} <= set(stored.user_attrs)
