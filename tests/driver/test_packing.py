"""Packing without running blind: every trial asked starts at once in a task of same-shaped
trials, never more trials RUNNING than the tasks in flight hold, and the timeout stops asking."""

import types

import pytest
from optuna.trial import TrialState

from sweeps.driver import tally as tally_module
from sweeps.driver.loop import Driver
from sweeps.driver.session import open_study
from sweeps.study.loading import parse_spec
from tests.helpers import FAKE

pytestmark = pytest.mark.timeout(120)


def test_pack_asks_only_what_free_slots_start_and_stops_at_the_timeout(client, tmp_path, monkeypatch):
    """The sweep's clock (`Tally`'s) is the test's: `budget.timeout` passes when the 16th trial
    has finished (two rounds of two tasks of four), whatever the machine's speed."""
    timeout = 3.0
    spec = parse_spec({
        "study": "pack", "env_id": "CartPole-v1",
        "trainer": {"total_timesteps": 500, "eval_freq": 100, "train_freq": 100},
        "space": {"learning_rate": {"type": "float", "low": 1e-3, "high": 1e-1, "log": True},
                  "batch_size": {"type": "categorical", "choices": [32, 64]}},
        "objective": {"metric": "final"}, "budget": {"n_trials": 200, "timeout": timeout},
        "parallel": 2, "pack": 4, "sampler": {"name": "random", "seed": 5}, "pruner": {"name": "none"},
    })
    now = [0.0]
    monkeypatch.setattr(tally_module, "time", types.SimpleNamespace(monotonic=lambda: now[0]))
    study = open_study(spec, tmp_path, None)
    driver = Driver(spec, study, client, tmp_path, entry=FAKE)
    driver.tally.started = 0.0
    submitted, problems, futures = [], [], []
    submit, ask, wait_and_handle, finish = client.submit, study.ask, driver.wait_and_handle, driver.finish
    waits, asked_at = [0], {}  # the driver's waits so far; trial number -> the waits before it was asked

    def noted_ask(*args, **kwargs):
        if driver.asker.stopping:
            problems.append(f"a trial asked after the driver said: {driver.asker.stopping}")
        trial = ask(*args, **kwargs)
        asked_at[trial.number] = waits[0]
        return trial

    def counted_wait():
        waits[0] += 1
        wait_and_handle()

    def finish_and_time(trial):
        finish(trial)
        if driver.tally.finished == 16:
            now[0] = timeout

    def checked_submit(function, payload, **kwargs):
        """Before each task goes out: every RUNNING trial is in a task in flight or in this one,
        or in a task that has finished (its slot is refilled before it is told); and every trial
        of this task was asked since the driver last waited (nothing asked waits to start)."""
        running = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
        in_flight = {number for task in driver.futures.values() for number, _ in task}
        this_task = {number for number, _ in payload["parts"]}
        ended = {number for future, parts in futures if future.done() for number, _ in parts}
        if running - in_flight - this_task - ended:
            problems.append(f"trials {sorted(running - in_flight - this_task - ended)} RUNNING outside any task")
        if len(running - ended) > spec.parallel * spec.pack:
            problems.append(f"{len(running - ended)} trials RUNNING in tasks")
        if len({config["batch_size"] for config in payload["configs"]}) != 1:
            problems.append(f"mates of different shapes: {payload['parts']}")
        if late := [number for number, _ in payload["parts"] if asked_at[number] != waits[0]]:
            problems.append(f"trials {late} asked before the driver's wait {waits[0]}, started after it")
        submitted.append(len(payload["parts"]))
        future = submit(function, payload, **kwargs)
        futures.append((future, payload["parts"]))
        return future

    monkeypatch.setattr(client, "submit", checked_submit)
    study.ask = noted_ask
    driver.wait_and_handle = counted_wait
    driver.finish = finish_and_time
    tally = driver.drive()
    assert problems == []
    assert max(submitted) == spec.pack  # mates were found, and nothing was left to start late ...
    assert driver.asker.stopping == f"timeout of {timeout:g} s reached"  # ... when the timeout stopped asking
    states = [t.state for t in study.trials]
    assert TrialState.RUNNING not in states and TrialState.WAITING not in states
    assert states.count(TrialState.COMPLETE) == len(states) == tally.completed > 16
    for trial in study.trials:
        mates = [study.trials[n] for n in trial.user_attrs["packed_with"]]
        assert all(m.params["batch_size"] == trial.params["batch_size"] for m in mates)
    # Trials asked after the first tasks ended knew of finished trials.
    assert max(t.user_attrs["finished_when_asked"] for t in study.trials) > 0


def test_a_queued_trial_with_its_own_checkpoint_is_never_asked_as_a_mate(tmp_path):
    """It resumes alone from its folder; as a mate it would start over in a new, shared one."""
    import optuna

    from sweeps.driver.packing import Mates

    spec = parse_spec({
        "study": "mates", "env_id": "CartPole-v1", "trainer": {"total_timesteps": 500, "eval_freq": 100},
        "space": {"learning_rate": {"type": "float", "low": 1e-3, "high": 1e-1, "log": True},
                  "batch_size": {"type": "categorical", "choices": [32, 64]}},
        "pack": 4,
    })
    study = optuna.create_study(direction="maximize")
    first = study.ask()
    first.suggest_categorical("batch_size", [32, 64])
    mates = Mates(study, spec, tmp_path)
    same_shape = {"learning_rate": 0.01, "batch_size": first.params["batch_size"]}
    study.enqueue_trial(same_shape, user_attrs={"requeued_from": 7})
    assert mates.prepare(first)  # a same-shaped queued trial whose original left no folder fits
    (tmp_path / "checkpoints" / "trial-7" / "seed-0").mkdir(parents=True)
    assert not mates.prepare(first)  # with a folder of its own it leads its own task
