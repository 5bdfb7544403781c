"""What many tests share, in one place: where things are, the stand-in trainer's entry, a small
study for the driver's tests, the command line in a subprocess, a real LocalCluster, and
waiting for something with a deadline (the deadline passing fails the test)."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import yaml

if TYPE_CHECKING:
    from distributed import Client, LocalCluster

    from sweeps.study.spec import StudySpec

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent  # this environment's console scripts: dqn-sweep, optuna, dask
DQN_SWEEP = str(BIN / "dqn-sweep")
SMOKE = ROOT / "studies" / "smoke.yaml"
LEGACY_RUN = Path(__file__).parent / "data" / "legacy_run"  # a run folder of the single-file format
FAKE = "tests.fakes.fake_trainer:train_population"  # the stand-in trainer (no TensorFlow)
T = TypeVar("T")


def make_spec(**changes: Any) -> StudySpec:
    """A small study for the fake trainer: 1000 steps, evaluations every 100 (5 ms each), 4 trials,
    2 in parallel, no pruner. A change to a section merges into it (`trainer={"train_freq": 100}`),
    but `space` replaces the space."""
    from sweeps.study.loading import parse_spec

    data: dict[str, Any] = {
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
        merge = isinstance(value, dict) and isinstance(data.get(key), dict) and key != "space"
        data[key] = {**data[key], **value} if merge else value
    return parse_spec(data)


def study_file(folder: Path, base: Path = SMOKE, name: str = "study.yaml", **changes: Any) -> Path:
    """`base` (a study file) with `changes` (a section merges, anything else replaces), written to
    `folder/name`."""
    data = yaml.safe_load(base.read_text())
    for key, value in changes.items():
        data[key] = {**data[key], **value} if isinstance(value, dict) and isinstance(data.get(key), dict) else value
    path = Path(folder) / name
    path.write_text(yaml.safe_dump(data))  # keys sorted: the order params are drawn in (tests pick seeds by it)
    return path


def dqn_sweep(*args: str, timeout: float = 120, env: dict[str, str | None] | None = None,
              check: bool = False) -> subprocess.CompletedProcess:
    """`dqn-sweep ARGS` in a subprocess from the project root. `env`: variables to set (None:
    unset) over this process's environment; `check`: its exit status must be 0."""
    environment = dict(os.environ)
    for name, value in (env or {}).items():
        if value is None:
            environment.pop(name, None)
        else:
            environment[name] = value
    done = subprocess.run([DQN_SWEEP, *args], cwd=ROOT, check=False, capture_output=True, text=True,
                          timeout=timeout, env=environment)
    if check:
        assert done.returncode == 0, f"dqn-sweep {' '.join(args)} exited {done.returncode}:\n" \
                                     f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def wait_until(condition: Callable[[], T], what: str, timeout: float = 60, every: float = 0.05,
               proc: subprocess.Popen | None = None) -> T:
    """Poll `condition` until it returns something true, and return that. Fails the test (naming
    `what`) when `timeout` seconds pass first, or when `proc` exits meanwhile."""
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        assert proc is None or proc.poll() is None, f"{what}: the process exited ({proc.returncode}) first"
        assert time.monotonic() < deadline, f"{what}: not within {timeout:g} s"
        time.sleep(every)
    return result


@contextlib.contextmanager
def local_cluster(n_workers: int = 2, **options: Any) -> Iterator[LocalCluster]:
    """A real LocalCluster on 127.0.0.1: worker processes of one thread each, no dashboard, quiet
    logs, unless `options` say otherwise."""
    from distributed import LocalCluster

    settings = {"threads_per_worker": 1, "host": "127.0.0.1", "processes": True, "dashboard_address": None,
                "silence_logs": logging.ERROR, **options}
    with LocalCluster(n_workers=n_workers, **settings) as cluster:
        yield cluster


@contextlib.contextmanager
def local_client(n_workers: int = 2, **options: Any) -> Iterator[Client]:
    """A client of a fresh `local_cluster(n_workers, **options)`."""
    from distributed import Client

    with local_cluster(n_workers, **options) as cluster, Client(cluster) as client:
        yield client


def get_json(url: str, proc: subprocess.Popen, timeout: float = 60) -> dict:
    """GET `url` as JSON, waiting for the server (`proc`, an optuna-dashboard) to come up."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                return json.loads(response.read())
        except (urllib.error.URLError, ConnectionError):
            assert proc.poll() is None, f"optuna-dashboard exited: {proc.stdout.read()}"
            assert time.monotonic() < deadline, f"no answer from {url} within {timeout} s"
            time.sleep(0.3)
