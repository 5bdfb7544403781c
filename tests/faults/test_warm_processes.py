"""Warm trial processes: a worker runs its next task in the process its last task used, and
still a crash, hang or timeout fails only that trial and the next task gets a fresh process;
processes are retired after `max_tasks_per_process` tasks or at `max_process_rss_mb`; nothing
fixed at start-up (GPU ids, threads, devices) is shared between tasks that differ in it; no
process outlives its worker.

Real LocalClusters, real child processes; the trainer is the fake one (no TensorFlow) except
in the test that checks a reused TensorFlow process trains exactly like a fresh one.
"""

from __future__ import annotations

import os
import signal
import threading
import time

import psutil
import pytest
from distributed import Client

from dqn_tf.config import TrainConfig
from sweeps.driver.loop import Driver
from sweeps.driver.session import open_study
from sweeps.results import load
from sweeps.study.loading import parse_spec
from sweeps.study.spec import SpecError
from sweeps.worker.environment import child_env
from sweeps.worker.processes import ProcessPool, TrialProcess, process_key
from sweeps.worker.supervise import Reuse, train_in_child
from sweeps.worker.task import train_task
from tests.helpers import local_client

pytestmark = pytest.mark.timeout(120)
WARM = "tests.fakes.warm_trainer:train_population"
LIMITS = {"max_tasks": 50, "max_rss_mb": None}
CRASH, SEGFAULT, HANG, HOG = 0.91, 0.92, 0.94, 0.97  # warm_trainer's gamma hooks


def config(seed: int = 0, **changes) -> dict:
    values = {"total_timesteps": 500, "eval_freq": 100, "train_freq": 1, "learning_rate": 0.01, "seed": seed}
    return TrainConfig.from_dict({**values, **changes}).to_dict()


def payload(cfg: dict, trial: int = 0, processes: dict | None = LIMITS, **extra) -> dict:
    return {"configs": [cfg], "parts": [[trial, [cfg["seed"]]]], "topic": "warm",
            "stop_events": {str(trial): f"warm-stop-{trial}"}, "cpu_threads": 1, "entry": WARM,
            "processes": processes, **extra}


def on_one_worker(client: Client, *payloads: dict) -> list[dict]:
    """Run `payloads` one after another on the same worker; their outcomes."""
    address = min(client.scheduler_info()["workers"])
    return [client.submit(train_task, p, pure=False, workers=[address]).result() for p in payloads]


def gone(pid: int) -> bool:
    """The process has exited (a zombie no one reaped counts) within 10 s."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


def test_the_next_task_reuses_the_process_and_starts_at_once(client):
    """Starts at once: in the process the last task left ready, not a new one (what that saves
    is measured by benchmarks/warm.py)."""
    first, second, third = on_one_worker(client, payload(config(0)), payload(config(1), trial=1),
                                         payload(config(2, gamma=0.5), trial=2))
    assert [o["status"] for o in (first, second, third)] == ["ok"] * 3
    assert first["process_pid"] == second["process_pid"] == third["process_pid"]
    assert [o["process_reused"] for o in (first, second, third)] == [False, True, True]
    assert [o["process_tasks"] for o in (first, second, third)] == [1, 2, 3]
    assert all(o["startup_seconds"] > 0 for o in (first, second, third))  # each recorded how it started
    assert third["results"][0]["diverged"]  # a diverged member is a result: the process stays warm
    assert second["results"][0]["config"]["seed"] == 1 and second["process_rss_mb"] > 0


def test_without_reuse_every_task_gets_a_fresh_process(client):
    outcomes = on_one_worker(client, payload(config(0), processes=None), payload(config(1), processes=None))
    assert [o["status"] for o in outcomes] == ["ok", "ok"]
    assert outcomes[0]["process_pid"] != outcomes[1]["process_pid"]
    assert [o["process_reused"] for o in outcomes] == [False, False]
    assert gone(outcomes[1]["process_pid"])  # ended with its task, not kept


@pytest.mark.parametrize("gamma, reason", [(CRASH, "child exited with status 1"),
                                           (SEGFAULT, "child killed by signal SIGSEGV")])
def test_a_task_that_crashes_a_warm_process_fails_alone_and_the_next_starts_fresh(client, gamma, reason):
    warm, crashed, after = on_one_worker(client, payload(config(7)), payload(config(8, gamma=gamma), trial=1),
                                         payload(config(9), trial=2))
    assert crashed["process_pid"] == warm["process_pid"] and crashed["process_reused"]
    assert crashed["status"] == "failed" and crashed["reason"].startswith(reason), crashed["reason"]
    assert "warm trainer: seed 8" in crashed["reason"]
    assert "seed 7" not in crashed["reason"]  # the stderr tail is the crashed task's own
    assert after["status"] == "ok" and not after["process_reused"] and after["process_tasks"] == 1
    assert after["process_pid"] != crashed["process_pid"] and gone(crashed["process_pid"])


def test_a_timed_out_task_does_not_poison_the_next(client):
    warm, hung, after = on_one_worker(client, payload(config(0)), payload(config(1, gamma=HANG), trial=1, time_limit=2),
                                      payload(config(2), trial=2, time_limit=30))
    assert hung["status"] == "failed" and hung["reason"] == "timeout after 2 s"
    assert hung["process_pid"] == warm["process_pid"] and gone(hung["process_pid"])
    assert after["status"] == "ok" and after["process_pid"] != hung["process_pid"] and not after["process_reused"]


def test_a_trainer_exception_retires_its_process_but_a_config_error_does_not(client):
    raised, after, refused, last = on_one_worker(
        client, payload(config(0, exploration_fraction=0.5)), payload(config(1), trial=1),
        payload({**config(2), "exploration_initial_eps": 0.1, "exploration_final_eps": 0.9}, trial=2),
        payload(config(3), trial=3))
    assert raised["status"] == "failed" and raised["reason"] == "ValueError: fake trainer bug"
    assert after["status"] == "ok" and after["process_pid"] != raised["process_pid"]
    assert refused["status"] == "failed" and refused["reason"].startswith("config: ")
    assert last["status"] == "ok" and last["process_pid"] == refused["process_pid"] == after["process_pid"]


def test_a_process_is_retired_after_max_tasks(client):
    limits = {"max_tasks": 2, "max_rss_mb": None}
    outcomes = on_one_worker(client, *(payload(config(k), trial=k, processes=limits) for k in range(5)))
    pids = [o["process_pid"] for o in outcomes]
    assert [o["process_tasks"] for o in outcomes] == [1, 2, 1, 2, 1]
    assert pids[0] == pids[1] != pids[2] == pids[3] != pids[4]
    assert gone(pids[0]) and gone(pids[2])  # retired as soon as they reached the limit


def test_a_process_is_retired_once_its_memory_reaches_max_rss(client):
    (first,) = on_one_worker(client, payload(config(0, gamma=HOG)))
    limit = first["process_rss_mb"] + 32  # the next 64 MiB crosses it
    limits = {"max_tasks": 50, "max_rss_mb": limit}
    second, third = on_one_worker(client, payload(config(1, gamma=HOG), trial=1, processes=limits),
                                  payload(config(2), trial=2, processes=limits))
    assert second["process_pid"] == first["process_pid"] and second["process_rss_mb"] >= limit
    assert gone(second["process_pid"])
    assert third["status"] == "ok" and third["process_pid"] != second["process_pid"]
    assert third["process_rss_mb"] < limit


def test_tasks_with_other_threads_get_their_own_process(client):
    one, two = on_one_worker(client, payload(config(0)), payload(config(1), trial=1, cpu_threads=2))
    assert one["process_pid"] != two["process_pid"] and not two["process_reused"]
    assert gone(one["process_pid"])  # the worker's one slot: the idle process made room
    environ = psutil.Process(two["process_pid"]).environ()  # idle in the pool now
    assert environ["TF_NUM_INTRAOP_THREADS"] == environ["OMP_NUM_THREADS"] == "2"


def test_the_key_holds_everything_fixed_at_start_up():
    def key(threads=1, gpus=("0",), names=(), devices="auto", **environ):
        return process_key(child_env(threads, list(gpus), names, environ={"PATH": "/bin", **environ}),
                           [config(devices=devices)])

    assert key() == key() and key().gpu_ids == {"0"}
    assert key(gpus=("1",)) != key() and key(gpus=("0", "1")).gpu_ids == {"0", "1"}
    assert key(threads=2) != key()
    assert key(devices="cpu:2") != key() and key(devices="cpu") != key()  # TF's logical devices: once a process
    assert key(names=["WANDB_MODE"], WANDB_MODE="offline") != key(WANDB_MODE="offline")
    assert key(SECRET_UNLISTED="x") == key()  # not passed to the child: not part of it
    assert key(gpus=()).gpu_ids == frozenset()


def test_an_idle_process_on_the_gpus_a_new_process_needs_is_retired_first():
    """Two slots, GPUs 0 and 1 (simulated: only CUDA_VISIBLE_DEVICES differs)."""
    pool = ProcessPool(capacity=2)
    gpu0, gpu1 = (process_key(child_env(1, [gpu], environ={}), [config()]) for gpu in ("0", "1"))
    gpu0_threads2 = process_key(child_env(2, ["0"], environ={}), [config()])
    try:
        first, _ = pool.acquire(gpu0)
        pool.release(first, keep=True)
        second, reused = pool.acquire(gpu1)
        pool.release(second, keep=True)
        assert not reused and first.alive and second.alive  # room for both
        again, reused = pool.acquire(gpu0)
        assert again is first and reused
        pool.release(again, keep=True)
        third, reused = pool.acquire(gpu0_threads2)
        assert not reused and not first.alive and second.alive  # GPU 0's old process made way
        pool.release(third, keep=False)
        assert not third.alive
    finally:
        pool.close()
    assert not second.alive


def test_a_gpu_worker_keeps_reusing_the_process_pinned_to_its_gpus():
    """One task slot, 2 GPUs (simulated), 1 GPU a task: the next task gets the GPU the last one
    released, so its warm process, rather than the other GPU and a fresh process each time."""
    with local_client(1, resources={"GPU": 2}) as client:
        outcomes = on_one_worker(client, *(payload(config(k), trial=k, gpus=1) for k in range(3)))
        environ = psutil.Process(outcomes[-1]["process_pid"]).environ()
    assert [o["status"] for o in outcomes] == ["ok"] * 3
    assert len({o["process_pid"] for o in outcomes}) == 1 and [o["process_tasks"] for o in outcomes] == [1, 2, 3]
    assert environ["CUDA_VISIBLE_DEVICES"] in ("0", "1")


def test_a_stop_reaches_only_the_task_it_names():
    child = TrialProcess(process_key(child_env(1, [], environ=os.environ), [config()]))
    slow = config(train_freq=100)  # 0.5 s: 5 evaluations of 0.1 s

    def task(stop: str | None) -> dict:
        assert child.request({"configs": [slow], "entry": WARM, "checkpoint_dir": None})
        if stop is not None:
            child.write(stop.format(task=child.tasks, previous=child.tasks - 1))
        while (message := child.messages.get(timeout=30))["type"] not in ("results", "error"):
            pass
        return message["results"][0]

    try:
        assert not task(None)["stopped_early"]
        assert not task("stop {previous} 0 pruned")["stopped_early"]  # late, for the task before
        stopped = task("stop {task} 0 pruned")
        assert stopped["stopped_early"] and stopped["stop_reason"] == "pruned" and stopped["env_steps"] < 500
        assert child.tasks == 3 and child.alive
    finally:
        child.close()
    assert child.proc.returncode == 75  # stdin closed: it exits at once


def test_a_warm_processs_relayed_stop_stops_its_current_task():
    pool = ProcessPool(capacity=1)
    reuse = Reuse(pool, max_tasks=50)
    stop = threading.Event()
    emitted: list[dict] = []

    def emit(event: dict) -> None:
        emitted.append(event)
        if len(emitted) >= 2:
            stop.set()

    try:
        first = train_in_child([config()], emit=lambda e: None, stopped_members=tuple, entry=WARM, reuse=reuse)
        long = config(train_freq=100, total_timesteps=50_000)  # 50 s unless stopped (stops are polled every 0.5 s)
        second = train_in_child([long], emit=emit, stopped_members=lambda: (0,) if stop.is_set() else (),
                                entry=WARM, reuse=reuse)
    finally:
        pool.close()
    assert second["process_reused"] and second["process_pid"] == first["process_pid"]
    assert second["results"][0]["stopped_early"] and second["results"][0]["env_steps"] < 50_000


@pytest.mark.parametrize("processes", [True, False])
def test_no_process_outlives_a_closed_cluster(processes):
    with local_client(1, processes=processes, protocol="tcp") as client:
        _, outcome = on_one_worker(client, payload(config()), payload(config(1), trial=1))
        assert outcome["status"] == "ok" and outcome["process_reused"]  # the first task's, kept warm
    assert gone(outcome["process_pid"])


def test_an_idle_process_exits_when_its_worker_dies(client):
    address = min(client.scheduler_info()["workers"])
    first, outcome = on_one_worker(client, payload(config()), payload(config(1), trial=1))
    assert outcome["process_reused"] and outcome["process_pid"] == first["process_pid"]  # kept warm, idle now
    os.kill(client.run(os.getpid, workers=[address])[address], signal.SIGKILL)  # no atexit, no plugin
    assert gone(outcome["process_pid"])  # its stdin closed


@pytest.fixture
def one_worker():
    with local_client(1) as client:
        yield client


STUDY = {
    "study": "warm", "env_id": "CartPole-v1",
    "trainer": {"total_timesteps": 500, "eval_freq": 100, "train_freq": 2},
    "space": {"gamma": {"type": "categorical", "choices": [0.99, SEGFAULT, HANG]}},
    "objective": {"metric": "final"}, "budget": {"n_trials": 4, "max_failed": 5}, "parallel": 1,
    "pruner": {"name": "none"}, "resources": {"time_limit": 3},
}


def test_a_sweep_records_how_each_trial_started(one_worker, tmp_path):
    spec = parse_spec(STUDY)
    study = open_study(spec, tmp_path, None)
    for gamma in (0.99, 0.99, SEGFAULT, 0.99, HANG, 0.99):
        study.enqueue_trial({"gamma": gamma})
    tally = Driver(spec, study, one_worker, tmp_path, entry=WARM).drive()

    assert tally.completed == 4 and tally.failed == 2
    trials = load(tmp_path)["trials"].set_index("number").sort_index()
    assert list(trials["state"]) == ["COMPLETE", "COMPLETE", "FAIL", "COMPLETE", "FAIL", "COMPLETE"]
    assert list(trials["process_reused"]) == [False, True, True, False, True, False]
    assert list(trials["process_tasks"]) == [1, 2, 3, 1, 2, 1]
    assert trials["startup_seconds"].gt(0).all()
    assert trials.loc[2, "fail_reason"].startswith("seed 0: child killed by signal SIGSEGV")
    assert trials.loc[4, "fail_reason"] == "seed 0: timeout after 3 s"
    assert trials["process_rss_mb"][trials["state"] == "COMPLETE"].gt(0).all()


def test_the_study_fields_are_checked():
    default = parse_spec(STUDY).resources
    assert default.reuse_processes and default.max_tasks_per_process == 50 and default.max_process_rss_mb == 4096
    assert default.process_limits() == {"max_tasks": 50, "max_rss_mb": 4096}
    off = parse_spec({**STUDY, "resources": {"reuse_processes": False}}).resources
    assert off.process_limits() is None
    unlimited = parse_spec({**STUDY, "resources": {"max_process_rss_mb": None}}).resources
    assert unlimited.process_limits() == {"max_tasks": 50, "max_rss_mb": None}
    with pytest.raises(SpecError, match="max_tasks_per_process limit warm processes, but reuse_processes is false"):
        parse_spec({**STUDY, "resources": {"reuse_processes": False, "max_tasks_per_process": 5}})
    with pytest.raises(SpecError, match=r"resources.max_tasks_per_process = 0: Input should be greater than or equal to 1"):
        parse_spec({**STUDY, "resources": {"max_tasks_per_process": 0}})
    with pytest.raises(SpecError, match=r"resources.max_process_rss_mb = -1: Input should be greater than 0"):
        parse_spec({**STUDY, "resources": {"max_process_rss_mb": -1}})
    with pytest.raises(SpecError, match="did you mean 'max_tasks_per_process'"):
        parse_spec({**STUDY, "resources": {"max_task_per_process": 5}})


@pytest.mark.timeout(180)
def test_a_reused_tensorflow_process_trains_exactly_like_a_fresh_one():
    """The real trainer: the second task runs in the process the first left (TensorFlow imported
    once) and gives the same evaluations as the first (nothing of the first task leaks into it)."""
    real = {"total_timesteps": 600, "net_arch": [16], "learning_starts": 100, "train_freq": 4, "eval_freq": 300,
            "n_eval_episodes": 2, "buffer_size": 600, "batch_size": 16}
    pool = ProcessPool(capacity=1)
    reuse = Reuse(pool, max_tasks=50)
    try:
        first, second = (train_in_child([real], emit=lambda e: None, stopped_members=tuple, reuse=reuse) for _ in range(2))
    finally:
        pool.close()
    assert first["status"] == second["status"] == "ok", (first["reason"], second["reason"])
    assert second["process_reused"] and second["process_pid"] == first["process_pid"] and second["process_tasks"] == 2
    assert second["results"][0]["evals"] == first["results"][0]["evals"]
    assert second["results"][0]["episodes"] == first["results"][0]["episodes"]
