"""The driver on a real 2-worker LocalCluster, with the fake trainer (no TensorFlow) in the
child processes: pruning stops runs early, seeds aggregate, failures are FAIL with a reason and
do not count, a rerun continues the study, trials a dead driver left RUNNING are recovered."""

import time

import optuna
import pytest
from optuna.trial import TrialState

from sweeps.driver import dispatch
from sweeps.driver.loop import Driver
from sweeps.driver.session import open_study
from sweeps.results import load
from sweeps.store import optuna_private
from sweeps.study.loading import parse_spec
from tests.sweeps.conftest import FAKE

pytestmark = pytest.mark.timeout(120)


def make_spec(**changes):
    data = {
        "study": "fake",
        "env_id": "CartPole-v1",
        "trainer": {"total_timesteps": 1000, "eval_freq": 100, "train_freq": 5},
        "space": {"learning_rate": {"type": "float", "low": 1e-3, "high": 1e-1, "log": True}},
        "objective": {"metric": "final"},
        "budget": {"n_trials": 4},
        "parallel": 2,
        "pruner": {"name": "none"},
    }
    for key, value in changes.items():
        data[key] = {**data[key], **value} if isinstance(value, dict) and key in data else value
    return parse_spec(data)


def sweep(spec, client, run_dir):
    study = open_study(spec, run_dir, None)
    tally = Driver(spec, study, client, run_dir, entry=FAKE).drive()
    return study, tally


def test_multi_seed_objective_is_the_aggregate_over_seeds(client, tmp_path):
    spec = make_spec(seeds=4, objective={"metric": "final", "seed_aggregate": "iqm"}, budget={"n_trials": 2})
    study, tally = sweep(spec, client, tmp_path)
    assert tally.completed == 2
    for trial in study.trials:
        # fake return at the end = 1000 * lr + seed; iqm over seeds 0..3 keeps 1 and 2
        assert trial.value == pytest.approx(1000 * trial.params["learning_rate"] + 1.5)
        assert trial.user_attrs["seeds"] == [0, 1, 2, 3]
        assert trial.user_attrs["env_steps"] == 4000
    tables = load(tmp_path)
    assert len(tables["trials"]) == 2
    assert set(tables["evals"]["seed"]) == {0, 1, 2, 3}
    assert len(tables["evals"]) == 2 * 4 * 10


def test_one_task_per_seed_gives_the_same_values_as_a_population(client, tmp_path):
    values = {}
    for population in (True, False):
        spec = make_spec(seeds=3, population=population, sampler={"name": "random", "seed": 4})
        study, tally = sweep(spec, client, tmp_path / str(population))
        assert tally.completed == 4
        values[population] = [t.value for t in study.trials]
        assert set(load(tmp_path / str(population))["evals"]["seed"]) == {0, 1, 2}
    assert values[True] == values[False]


def test_pruned_trials_stop_early_and_free_their_workers(client, tmp_path):
    spec = make_spec(
        trainer={"total_timesteps": 2000, "eval_freq": 100, "train_freq": 100},
        seeds=2,
        budget={"n_trials": 6},
        sampler={"name": "random", "seed": 1},
        pruner={"name": "percentile", "options": {"percentile": 90.0, "n_startup_trials": 1}},
    )
    study, tally = sweep(spec, client, tmp_path)
    pruned = [t for t in study.trials if t.state == TrialState.PRUNED]
    assert pruned and tally.pruned == len(pruned)
    assert tally.completed + tally.pruned == 6
    # A trial running beside the first one to complete may be pruned at its final report.
    early = [t for t in pruned if max(t.intermediate_values) < 2000]
    assert early
    for trial in early:
        assert trial.user_attrs["env_steps"] < 2 * 2000  # both seeds stopped early
    frame = load(tmp_path)["trials"]
    assert set(frame["state"]) >= {"PRUNED", "COMPLETE"}


def test_failed_trials_are_fail_with_reason_and_do_not_count(client, tmp_path):
    spec = make_spec(
        space={"learning_rate": {"type": "float", "low": 1e-3, "high": 1e-1, "log": True},
               "exploration_fraction": {"type": "categorical", "choices": [0.1, 0.5, 0.25]}},
        sampler={"name": "random", "seed": 0},
        budget={"n_trials": 3, "max_failed": 20},
    )
    study, tally = sweep(spec, client, tmp_path)
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    failed = [t for t in study.trials if t.state == TrialState.FAIL]
    assert len(complete) == 3 and tally.failed == len(failed) > 0
    reasons = {t.params["exploration_fraction"]: t.user_attrs["fail_reason"] for t in failed}
    for fraction, reason in reasons.items():
        expected = "ValueError: fake trainer bug" if fraction == 0.5 else "child exited with status 3"
        assert expected in reason
    frame = load(tmp_path)["trials"]
    assert frame.loc[frame["state"] == "FAIL", "fail_reason"].notna().all()


def test_rerun_continues_the_study_and_recovers_trials_left_running(client, tmp_path):
    spec = make_spec(budget={"n_trials": 2})
    study, _ = sweep(spec, client, tmp_path)
    assert len(study.trials) == 2
    lost = study.ask({"learning_rate": optuna.distributions.FloatDistribution(1e-3, 1e-1, log=True)})
    # Without a lease of its own, the trial is taken over `grace` seconds after it started.
    spec = make_spec(budget={"n_trials": 4}, storage={"heartbeat": 1, "grace": 2})
    study, tally = sweep(spec, client, tmp_path)
    states = [t.state for t in study.trials]
    assert states.count(TrialState.COMPLETE) == 4 and TrialState.RUNNING not in states
    assert study.trials[lost.number].user_attrs["fail_reason"] == "driver lost"
    requeued = [t for t in study.trials if t.user_attrs.get("requeued_from") == lost.number]
    assert requeued and requeued[0].params == study.trials[lost.number].params
    assert tally.finished_before == 2 and tally.completed == 2
    assert len(load(tmp_path)["trials"]) == 5


def sweep_enqueued(spec, client, run_dir, trials):
    """A sweep whose trials are the given params, in order (so packs are known in advance)."""
    study = open_study(spec, run_dir, None)
    for params in trials:
        study.enqueue_trial(params)
    tally = Driver(spec, study, client, run_dir, entry=FAKE).drive()
    return study, tally


def test_packed_trials_share_a_task_only_with_same_shaped_trials(client, tmp_path):
    spec = make_spec(
        space={"learning_rate": {"type": "float", "low": 1e-3, "high": 1e-1, "log": True},
               "batch_size": {"type": "categorical", "choices": [32, 64]}},
        seeds=2, pack=2, parallel=1,
    )
    trials = [{"learning_rate": lr, "batch_size": batch} for lr, batch in
              [(0.01, 32), (0.02, 64), (0.03, 64), (0.04, 32)]]
    study, tally = sweep_enqueued(spec, client, tmp_path, trials)
    assert tally.completed == 4
    # Each task asks for one more trial: 0 (32) finds 1 (64) unfit and goes alone, 1 packs with
    # 2 (64), and the budget leaves 3 alone.
    assert [t.user_attrs["packed_with"] for t in study.trials] == [[], [2], [1], []]
    for trial in study.trials:  # each trial keeps its own learning rate and seeds
        assert trial.value == pytest.approx(1000 * trial.params["learning_rate"] + 0.5)
        assert trial.user_attrs["env_steps"] == 2 * 1000


def test_a_packed_trial_is_pruned_or_fails_alone(client, tmp_path):
    spec = make_spec(
        space={"learning_rate": {"type": "float", "low": 1e-3, "high": 1e-1, "log": True},
               "gamma": {"type": "categorical", "choices": [0.99, 0.5]}},
        seeds=2, pack=2, parallel=1, budget={"n_trials": 6},
        trainer={"total_timesteps": 1000, "eval_freq": 100, "train_freq": 200},  # 0.2 s per eval: time to stop
        pruner={"name": "percentile", "options": {"percentile": 50.0, "n_startup_trials": 2}},
    )
    trials = [{"learning_rate": lr, "gamma": gamma} for lr, gamma in
              [(0.1, 0.99), (0.05, 0.99),  # both complete: the pruner's reference
               (0.1, 0.99), (0.001, 0.99),  # the second is pruned at its first report
               (0.1, 0.5), (0.1, 0.99)]]  # the first diverges
    study, tally = sweep_enqueued(spec, client, tmp_path, trials)
    states = [t.state for t in study.trials]
    assert states[:6] == [TrialState.COMPLETE, TrialState.COMPLETE, TrialState.COMPLETE, TrialState.PRUNED,
                          TrialState.FAIL, TrialState.COMPLETE]
    assert len(states) == 7  # a failed trial does not count: one more was asked
    assert [t.user_attrs["packed_with"] for t in study.trials[:6]] == [[1], [0], [3], [2], [5], [4]]
    pruned, failed = study.trials[3], study.trials[4]
    assert pruned.user_attrs["env_steps"] < 2 * 1000  # its members stopped early ...
    assert "diverged" in failed.user_attrs["fail_reason"]
    for mate in (study.trials[2], study.trials[5]):  # ... while their pack-mates trained on
        assert mate.user_attrs["env_steps"] == 2 * 1000
        assert mate.value == pytest.approx(1000 * 0.1 + 0.5)
    assert tally.failed == 1 and tally.pruned == states.count(TrialState.PRUNED)


def test_final_evaluation_never_prunes_a_trial_that_trained_to_the_end(client, tmp_path):
    # The pruner may only act after step 900, that is on the final evaluation (step 1000), where
    # trial 1 is far below trial 0: it must still be COMPLETE with its objective.
    spec = make_spec(seeds=2, parallel=1, budget={"n_trials": 2},
                     pruner={"name": "median", "options": {"n_startup_trials": 1, "n_warmup_steps": 901}})
    study, tally = sweep_enqueued(spec, client, tmp_path, [{"learning_rate": 0.1}, {"learning_rate": 0.01}])
    first, second = study.trials
    assert [first.state, second.state] == [TrialState.COMPLETE, TrialState.COMPLETE]
    assert second.value == pytest.approx(1000 * 0.01 + 0.5) and second.value < first.value
    assert second.intermediate_values[1000] == pytest.approx(second.value)  # reported, not pruned on
    assert tally.completed == 2 and tally.pruned == 0


def test_a_pruner_judges_every_step_also_those_that_came_with_the_results(client, tmp_path):
    """Trials this short send their evaluations with their results (`sweeps.outbox` sends at most
    once a second): with a pruner, each step is still judged, and successive halving records
    every rung a trial reached (here at steps 100, 200, 400 and 800)."""
    spec = make_spec(budget={"n_trials": 4}, pruner={"name": "successive_halving",
                                                     "options": {"min_resource": 100, "reduction_factor": 2}})
    study, _ = sweep(spec, client, tmp_path)
    for trial in study.trials:
        assert sorted(trial.intermediate_values) == list(range(100, 1001, 100))
        if trial.state == TrialState.COMPLETE:  # a trial that trained to the end, whatever the pruner said
            assert "completed_rung_0" in trial.system_attrs, trial.system_attrs


def test_messy_members_report_at_the_same_steps_and_prune(client, tmp_path):
    # n_envs 4 and seeds 0, 1: seed 1's counter runs 1, 5, ... so it evaluates at 101, 201, ...,
    # its evaluations arrive late, and the run ends at 1053 (total 1050 is no eval boundary).
    # 0.3 s per evaluation: a task sends its events at most once a second (`sweeps.outbox`).
    spec = make_spec(
        trainer={"total_timesteps": 1050, "eval_freq": 100, "train_freq": 300, "n_envs": 4},
        seeds=2, parallel=2, budget={"n_trials": 6},
        pruner={"name": "median", "options": {"n_startup_trials": 1}},
    )
    rates = [0.1, 0.05, 0.002, 0.08, 0.001, 0.09]  # 0.002 and 0.001 start after a trial completed
    study, tally = sweep_enqueued(spec, client, tmp_path, [{"learning_rate": lr} for lr in rates])
    boundaries = [*range(100, 1001, 100), 1050]
    finished = [t for t in study.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == 6 and tally.failed == 0
    for trial in finished:
        steps = sorted(trial.intermediate_values)
        if trial.state == TrialState.COMPLETE:
            assert steps == boundaries
            assert trial.value == pytest.approx(1000 * trial.params["learning_rate"] + 0.5)
        else:
            assert steps == boundaries[:len(steps)] and 1050 not in steps
    pruned = [t.params["learning_rate"] for t in finished if t.state == TrialState.PRUNED]
    assert set(pruned) >= {0.002, 0.001}
    evals = load(tmp_path)["evals"]
    assert set(evals["step"]) <= set(boundaries)
    late_seed = evals[evals["seed"] == 1]
    assert (late_seed["env_steps"] != late_seed["step"]).all()  # unaligned counters, aligned labels
    complete = next(t for t in finished if t.state == TrialState.COMPLETE)
    rows = evals[evals["trial"] == complete.number]
    # The fake checkpoints after every evaluation it delivers (both members: one task).
    assert complete.user_attrs["checkpoint_saves"] == len(rows) == 2 * len(boundaries)
    assert complete.user_attrs["checkpoint_bytes"] > 0 and complete.user_attrs["checkpoint_seconds_per_save"] > 0
    assert not list(tmp_path.glob("checkpoints/*"))


@pytest.mark.parametrize(("sampler", "refilled_first"), [("random", True), ("tpe", False)])
def test_a_finished_tasks_slot_is_refilled_before_its_outcome_is_read_only_for_a_blind_sampler(
        client, tmp_path, monkeypatch, sampler, refilled_first):
    """Reading a task's outcome from its worker is made slow here (1.5 s): a blind sampler's
    refill does not wait for it, nor for the tell; a model-based one asks once told."""
    spec = make_spec(budget={"n_trials": 6}, parallel=2, sampler={"name": sampler, "seed": 0})
    study = open_study(spec, tmp_path, None)
    submits, submits_at_read, submits_at_tell = [], [], []
    submit, tell, read = client.submit, optuna_private.tell_body, dispatch.task_outcome

    def slow_read(future):
        time.sleep(1.5)
        submits_at_read.append(len(submits))
        return read(future)

    monkeypatch.setattr(client, "submit", lambda *a, **k: submits.append(1) or submit(*a, **k))
    monkeypatch.setattr(dispatch, "task_outcome", slow_read)
    monkeypatch.setattr(optuna_private, "tell_body",  # `optuna_private.tell` calls Study.tell's body
                        lambda *a, **k: submits_at_tell.append(len(submits)) or tell(*a, **k))
    Driver(spec, study, client, tmp_path, entry=FAKE).drive()
    assert len(submits) == 6 and len(submits_at_tell) == 6 and len(submits_at_read) == 6
    assert all(t.state == TrialState.COMPLETE for t in study.trials)
    # Random: the k-th outcome read ends, and the k-th tell comes, after its slot's refill (2
    # first submits + k refills). TPE asks knowing every finished trial: after the k-th tell.
    assert [at >= 2 + k for k, at in enumerate(submits_at_read[:4], start=1)] == [refilled_first] * 4, submits_at_read
    assert [at >= 2 + k for k, at in enumerate(submits_at_tell[:4], start=1)] == [refilled_first] * 4, submits_at_tell


@pytest.mark.parametrize(("sampler", "asked_ahead"), [("random", True), ("tpe", False)])
def test_a_blind_sampler_has_the_next_trial_asked_when_a_slot_frees(client, tmp_path, monkeypatch, sampler,
                                                                     asked_ahead):
    """A sampler that draws blind asks the next trial while every slot is busy (a freed slot only
    submits it); a model-based one asks once the finished trials are told. One slot: two tasks
    returning together would find one trial asked ahead, not two."""
    spec = make_spec(budget={"n_trials": 6}, parallel=1, sampler={"name": sampler, "seed": 0},
                     trainer={"train_freq": 20})  # 0.2 s trials: the ask ahead comes well before a return
    study = open_study(spec, tmp_path, None)
    counts = {"ask": 0, "submit": 0}
    waiting = []  # trials asked and not yet submitted, each time a task returns
    submit, ask, pass_outcome = client.submit, study.ask, dispatch.pass_outcome

    def noted(*args):
        waiting.append(counts["ask"] - counts["submit"])
        pass_outcome(*args)

    def count(name, function):
        def counted(*a, **k):
            counts[name] += 1
            return function(*a, **k)
        return counted

    monkeypatch.setattr(client, "submit", count("submit", submit))
    monkeypatch.setattr(dispatch, "pass_outcome", noted)
    study.ask = count("ask", ask)
    Driver(spec, study, client, tmp_path, entry=FAKE).drive()
    assert len(study.trials) == 6 and all(t.state == TrialState.COMPLETE for t in study.trials)
    assert [w >= 1 for w in waiting[:5]] == [asked_ahead] * 5, waiting
    assert waiting[5:] == [0]  # the budget is spent


def test_a_blind_sampler_asks_no_trial_past_max_failed(client, tmp_path):
    """Slots are refilled before the tell only while the finished tasks' failures cannot reach
    the limit: here the first failure ends the sweep, and no trial is asked after it."""
    spec = make_spec(space={"learning_rate": {"type": "float", "low": 1e-3, "high": 1e-1, "log": True},
                            "exploration_fraction": {"type": "categorical", "choices": [0.5]}},  # the fake fails
                     sampler={"name": "random", "seed": 0}, parallel=1, budget={"n_trials": 5, "max_failed": 0})
    study, tally = sweep(spec, client, tmp_path)
    assert [t.state for t in study.trials] == [TrialState.FAIL] and tally.failed == 1


def test_a_rerun_whose_space_optuna_rejects_fails_those_trials_with_the_reason_and_keeps_the_rest(client, tmp_path):
    """Optuna refuses a param whose distribution differs from the study's (here a categorical's
    choices changed between sessions): each such trial is FAIL with the reason, and the sweep
    stops at `max_failed` instead of crashing."""
    space = {"learning_rate": {"type": "float", "low": 1e-3, "high": 1e-1, "log": True},
             "exploration_fraction": {"type": "categorical", "choices": [0.1, 0.2]}}
    sweep(make_spec(space=space, budget={"n_trials": 2}), client, tmp_path)
    changed = {**space, "exploration_fraction": {"type": "categorical", "choices": [0.1, 0.3]}}
    study, tally = sweep(make_spec(space=changed, budget={"n_trials": 4, "max_failed": 1}), client, tmp_path)
    states = [t.state for t in study.trials]
    assert states[:2] == [TrialState.COMPLETE] * 2 and states[2:] == [TrialState.FAIL] * 2 and tally.failed == 2
    assert all(t.user_attrs["fail_reason"].startswith("suggest: ") for t in study.trials[2:])
