"""The trial's child process: a population's results, failures kept apart from stops, time
limit, stop relay; its environment (an allowlist), scrubbed reasons, and thread sizing.

Uses the fake trainer (no TensorFlow) so each case costs only a Python start-up.
"""

import json
import os
import threading

import pytest

from dqn_tf.config import TrainConfig
from sweeps.driver.trial import member_failure
from sweeps.secrets import env_secrets, scrub
from sweeps.study.resources import SET_BY_TASK
from sweeps.worker.cores import auto_threads, available_cores, cgroup_cpu_quota, host_slots
from sweeps.worker.environment import child_env
from sweeps.worker.supervise import train_in_child

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
    outcome = train_in_child(cfgs, emit=emit, stopped_members=lambda: stop_members if stop.is_set() else (),
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
    outcome, _ = run(config(train_freq=200), stop_after=2)  # 2 s: the 0.5 s stop poll catches it
    (result,) = outcome["results"]
    assert outcome["status"] == "ok" and result["stopped_early"]
    assert result["stop_reason"] == "pruned"
    assert result["env_steps"] < 1000


def test_a_stop_request_stops_only_the_members_it_names():
    members = [config(train_freq=200, seed=seed) for seed in range(3)]
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
    env = child_env(3, ["2", "5"], environ={"CUDA_VISIBLE_DEVICES": "0,1,2,3,4,5", "OMP_NUM_THREADS": "64"})
    assert env["TF_NUM_INTRAOP_THREADS"] == env["TF_NUM_INTEROP_THREADS"] == env["OMP_NUM_THREADS"] == "3"
    assert env["CUDA_VISIBLE_DEVICES"] == "2,5"
    assert child_env(1, [], environ={})["CUDA_VISIBLE_DEVICES"] == ""
    assert set(SET_BY_TASK) <= set(child_env(1, [], environ={}))  # what resources.env may not name


WORKER = {
    "PATH": "/usr/bin", "HOME": "/home/u", "LANG": "C.UTF-8", "LC_ALL": "C", "VIRTUAL_ENV": "/venv",
    "TF_CPP_MIN_LOG_LEVEL": "0", "XLA_FLAGS": "--xla_gpu_autotune_level=0", "NCCL_DEBUG": "INFO",
    "DQN_SWEEP_TEST_RECORD": "/tmp/r", "DQN_SWEEP_STORAGE": "postgresql://u:pg-secret@db/x",
    "AWS_SECRET_ACCESS_KEY": "aws-secret", "PGPASSWORD": "pg-password", "GITHUB_TOKEN": "ghp_token",
    "DATABASE_URL": "postgresql://app:url-secret@db/app", "WANDB_MODE": "offline", "SHORTKEY": "abc",
    "TF_VAR_db_password": "tf-secret", "TF_TOKEN_app_terraform_io": "tf-token", "TF_CLI_CONFIG_FILE": "/t",  # Terraform's
}


def test_child_gets_the_allowlist_and_what_the_study_names():
    env = child_env(2, [], ["WANDB_MODE", "DQN_SWEEP_STORAGE"], environ=WORKER)
    kept = {"PATH", "HOME", "LANG", "LC_ALL", "VIRTUAL_ENV", "TF_CPP_MIN_LOG_LEVEL", "XLA_FLAGS", "NCCL_DEBUG",
            "DQN_SWEEP_TEST_RECORD", "WANDB_MODE"}
    assert {name for name in WORKER if name in env} == kept
    assert env["TF_CPP_MIN_LOG_LEVEL"] == "0"  # the worker's choice, else quiet
    assert child_env(2, [], environ={})["TF_CPP_MIN_LOG_LEVEL"] == "2"
    assert "WANDB_MODE" not in child_env(2, [], environ=WORKER)


def test_secret_looking_values_are_scrubbed_longest_first():
    secrets = env_secrets(WORKER)
    assert set(secrets) == {"postgresql://u:pg-secret@db/x", "pg-secret", "aws-secret", "pg-password",
                            "ghp_token", "url-secret", "tf-secret", "tf-token"}  # "abc" is too short to mask safely
    text = "auth failed for postgresql://u:pg-secret@db/x (pg-secret); key aws-secret; url-secret; abc"
    assert scrub(text, secrets) == "auth failed for *** (***); key ***; ***; abc"


LEAKY = "tests.faults.faulty_trainer:leaky_population"


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


@pytest.mark.parametrize("cores, slots, threads", [(8, 2, 4), (64, 16, 4), (2, 7, 1), (4, 0, 4), (5, 2, 2)])
def test_auto_threads_share_the_cores_among_the_slots(cores, slots, threads):
    assert auto_threads(cores, slots) == threads


def test_host_slots_count_every_thread_of_every_worker_on_the_host():
    workers = [{"host": "a", "nthreads": 1}, {"host": "a", "nthreads": 3}, {"host": "a"}, {"host": "b", "nthreads": 4}]
    assert host_slots("a", workers) == 5
    assert host_slots("c", workers) == 0


def cgroup(tmp_path, files):
    """A fake cgroup file system: {relative path: content}."""
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n")
    return tmp_path


@pytest.mark.parametrize("files, cgroup_path, cpus", [
    ({}, "/", None),
    ({"cpu.max": "max 100000"}, "/", None),
    ({"cpu.max": "150000 100000"}, "/", 1.5),
    ({"cpu.max": "400000 100000", "kubepods/pod1/cpu.max": "max 100000", "kubepods/pod1/c1/cpu.max": "200000 100000"},
     "/kubepods/pod1/c1", 2.0),  # the tightest of the cgroup and its ancestors
    ({"cpu.max": "50000 100000"}, "/not/mounted/here", 0.5),
    ({"cpu/cpu.cfs_quota_us": "300000", "cpu/cpu.cfs_period_us": "100000"}, "/", 3.0),  # v1
    ({"cpu,cpuacct/cpu.cfs_quota_us": "-1", "cpu,cpuacct/cpu.cfs_period_us": "100000"}, "/", None),
    ({"cpu.max": "junk"}, "/", None),
])
def test_cgroup_cpu_quota(tmp_path, files, cgroup_path, cpus):
    assert cgroup_cpu_quota(cgroup(tmp_path, files), cgroup_path) == cpus


@pytest.fixture
def two_cpus():
    """This thread pinned to two CPUs (restored after): tests see a known affinity."""
    mine = sorted(os.sched_getaffinity(0))
    if len(mine) < 2:
        pytest.skip("needs 2 CPUs")
    os.sched_setaffinity(0, mine[:2])
    yield mine[:2]
    os.sched_setaffinity(0, mine)


def test_available_cores_take_affinity_and_quota(tmp_path, two_cpus):
    assert available_cores(cgroup(tmp_path / "none", {}), "/") == 2
    assert available_cores(cgroup(tmp_path / "max", {"cpu.max": "max 100000"}), "/") == 2
    assert available_cores(cgroup(tmp_path / "half", {"cpu.max": "50000 100000"}), "/") == 1
    assert available_cores(cgroup(tmp_path / "1.5", {"cpu.max": "150000 100000"}), "/") == 2  # rounded up
    assert available_cores(cgroup(tmp_path / "16", {"cpu.max": "1600000 100000"}), "/") == 2  # affinity caps
    os.sched_setaffinity(0, two_cpus[:1])
    assert available_cores(tmp_path / "none", "/") == 1
