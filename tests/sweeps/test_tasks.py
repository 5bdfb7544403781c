"""The trial's child process: a population's results, failures kept apart from stops, time
limit, stop relay.

Uses the fake trainer (no TensorFlow) so each case costs only a Python start-up.
"""

import threading

import pytest

from dqn_tf.config import TrainConfig
from sweeps.tasks import auto_threads, child_env, member_failure, run_child

pytestmark = pytest.mark.timeout(60)
FAKE = "tests.sweeps.fake_trainer:train_population"


def config(**changes):
    values = {"total_timesteps": 1000, "eval_freq": 100, "train_freq": 1, "learning_rate": 0.01}
    return TrainConfig.from_dict({**values, **changes}).to_dict()


def run(cfgs, stop_after=None, stop_members=(0,), **kwargs):
    """Run the fake; after `stop_after` events, ask `stop_members` to stop."""
    events, stop = [], threading.Event()

    def emit(event):
        events.append(event)
        if stop_after is not None and len(events) >= stop_after:
            stop.set()

    cfgs = cfgs if isinstance(cfgs, list) else [cfgs]
    outcome = run_child(cfgs, emit=emit, stopped_members=lambda: stop_members if stop.is_set() else (),
                        entry=FAKE, **kwargs)
    return outcome, events


def test_result_and_events_come_back():
    outcome, events = run(config())
    assert outcome["status"] == "ok", outcome["reason"]
    assert [e["step"] for e in events] == list(range(100, 1001, 100))
    assert outcome["results"][0]["env_steps"] == 1000
    assert member_failure(outcome["results"][0]) is None
    assert outcome["startup_seconds"] > 0


def test_a_population_reports_each_member():
    outcome, events = run([config(seed=0), config(seed=7, learning_rate=0.02)])
    assert outcome["status"] == "ok", outcome["reason"]
    assert [r["config"]["seed"] for r in outcome["results"]] == [0, 7]
    assert [r["member"] for r in outcome["results"]] == [0, 1]
    assert {e["member"] for e in events} == {0, 1}
    final = [r["final_eval_mean"] for r in outcome["results"]]
    assert final[1] > final[0]  # its own learning rate and seed


def test_stop_request_ends_the_run_early_and_cleanly():
    outcome, _ = run(config(train_freq=50), stop_after=2)
    (result,) = outcome["results"]
    assert outcome["status"] == "ok" and result["stopped_early"]
    assert result["stop_reason"] == "pruned"
    assert result["env_steps"] < 1000


def test_a_stop_request_stops_only_the_members_it_names():
    members = [config(train_freq=50, seed=seed) for seed in range(3)]
    outcome, _ = run(members, stop_after=2, stop_members=(0, 2))
    first, second, third = outcome["results"]
    assert outcome["status"] == "ok"
    assert first["stopped_early"] and third["stopped_early"] and first["stop_reason"] == "pruned"
    assert first["env_steps"] < 1000 and third["env_steps"] < 1000
    assert not second["stopped_early"] and second["env_steps"] == 1000


@pytest.mark.parametrize(
    "changes, reason",
    [
        ({"exploration_fraction": 0.5}, "ValueError: fake trainer bug"),
        ({"exploration_fraction": 0.25}, "child exited with status 3"),
        ({"exploration_final_eps": 0.9, "exploration_initial_eps": 0.5}, "config: "),
    ],
)
def test_failures_carry_their_reason(changes, reason):
    outcome, _ = run(config(**changes) if "exploration_initial_eps" not in changes else {**config(), **changes})
    assert outcome["status"] == "failed"
    assert outcome["reason"].startswith(reason), outcome["reason"]
    assert outcome["results"] is None


def test_a_diverged_member_is_a_failure_of_its_own():
    outcome, _ = run([config(), config(gamma=0.5)])
    assert outcome["status"] == "ok"
    healthy, diverged = outcome["results"]
    assert member_failure(healthy) is None
    assert member_failure(diverged).startswith("diverged: loss became nan")


def test_time_limit_kills_the_child():
    outcome, _ = run(config(train_freq=1000), time_limit=2.0)
    assert outcome["status"] == "failed"
    assert outcome["reason"] == "timeout after 2 s"
    assert outcome["wall_seconds"] < 10


def test_child_gets_its_threads_and_only_its_gpus():
    env = child_env(3, ["2", "5"])
    assert env["TF_NUM_INTRAOP_THREADS"] == env["TF_NUM_INTEROP_THREADS"] == "3"
    assert env["CUDA_VISIBLE_DEVICES"] == "2,5"
    assert child_env(1, [])["CUDA_VISIBLE_DEVICES"] == ""


def test_auto_threads_share_the_host_among_all_its_task_slots():
    import os

    workers = [{"host": "a", "nthreads": 1}, {"host": "a", "nthreads": 1}, {"host": "b", "nthreads": 4}]
    assert auto_threads("a", workers) == max(1, (os.cpu_count() or 1) // 2)
    assert auto_threads("c", workers) == (os.cpu_count() or 1)
