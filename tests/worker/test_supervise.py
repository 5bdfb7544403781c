"""The trial's child process: a population's results, failures kept apart from stops, time
limit, stop relay, and a crashed child's reason without the worker's secrets.

Uses the fake trainer (no TensorFlow) so each case costs only a Python start-up.
"""

import json
import threading

import pytest

from dqn_tf.config import TrainConfig
from sweeps.driver.trial import member_failure
from sweeps.worker.supervise import train_in_child
from tests.helpers import FAKE

pytestmark = pytest.mark.timeout(60)
FAULTY = "tests.fakes.faulty_trainer:train_population"


def config(**changes):
    values = {"total_timesteps": 1000, "eval_freq": 100, "train_freq": 1, "learning_rate": 0.01}
    return TrainConfig.from_dict({**values, **changes}).to_dict()


def run(cfgs, stop_after=None, stop_members=(0,), entry=FAKE, **kwargs):
    """Run `entry` (the fake trainer); after `stop_after` events, ask `stop_members` to stop."""
    events, stop = [], threading.Event()

    def emit(event):
        events.append(event)
        if stop_after is not None and len(events) >= stop_after:
            stop.set()

    cfgs = cfgs if isinstance(cfgs, list) else [cfgs]
    outcome = train_in_child(cfgs, emit=emit, stopped_members=lambda: stop_members if stop.is_set() else (),
                        entry=entry, **kwargs)
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
    # 40 s unless stopped: the stop (polled every 0.5 s) ends it in about a second
    outcome, _ = run(config(train_freq=200, total_timesteps=20_000), stop_after=2)
    (result,) = outcome["results"]
    assert outcome["status"] == "ok" and result["stopped_early"]
    assert result["stop_reason"] == "pruned"
    assert result["env_steps"] < 20_000


def test_a_stop_request_stops_only_the_members_it_names():
    # 3 s runs; the stop is asked at the first event and polled every 0.5 s
    members = [config(train_freq=300, seed=seed) for seed in range(3)]
    outcome, _ = run(members, stop_after=1, stop_members=(0, 2))
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
    """The faulty trainer's hang (gamma 0.94) never returns: only the limit ends it."""
    outcome, _ = run(config(gamma=0.94), time_limit=2.0, entry=FAULTY)
    assert outcome["status"] == "failed"
    assert outcome["reason"] == "timeout after 2 s"
    assert outcome["results"] is None


LEAKY = "tests.fakes.faulty_trainer:leaky_population"


def test_a_crashed_childs_reason_holds_no_worker_secret(monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-s3cr3t-1")
    monkeypatch.setenv("WANDB_API_KEY", "wandb-s3cr3t-2")  # named by the study: passed, yet never shown
    monkeypatch.setenv("WANDB_MODE", "offline")
    outcome = train_in_child([config()], emit=lambda event: None, stopped_members=tuple, entry=LEAKY,
                        env=["WANDB_MODE", "WANDB_API_KEY"])
    assert outcome["reason"].startswith("child exited with status 1; stderr tail:\nchild env: {")
    assert "s3cr3t" not in outcome["reason"]
    child = json.loads(outcome["reason"].splitlines()[1].removeprefix("child env: "))
    assert child["WANDB_MODE"] == "offline" and child["WANDB_API_KEY"] == "***"
    assert "AWS_SECRET_ACCESS_KEY" not in child
