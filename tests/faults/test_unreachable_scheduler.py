"""`--scheduler` at a closed port: a one-line error naming the address within the connect
timeout, and the study stays resumable."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent / "dqn-sweep"
FAKE = "tests.sweeps.fake_trainer:train_population"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.timeout(120)
def test_unreachable_scheduler_fails_fast_and_the_study_resumes(tmp_path):
    address = f"tcp://127.0.0.1:{closed_port()}"
    run_dir = tmp_path / "run"
    args = [str(BIN), "run", "studies/smoke.yaml", "--output", str(run_dir), "--n-trials", "1", "--entry", FAKE]
    started = time.monotonic()
    done = subprocess.run([*args, "--scheduler", address], cwd=ROOT, check=False, capture_output=True, text=True,
                          timeout=60, env={**os.environ, "DQN_SWEEP_CONNECT_TIMEOUT": "3"})
    elapsed = time.monotonic() - started
    assert done.returncode == 2
    assert done.stderr.startswith(f"error: cannot reach the Dask scheduler at {address} within 3 s")
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert elapsed < 15

    done = subprocess.run(args, cwd=ROOT, check=False, capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "smoke: 1 trials finished" in done.stdout
