"""`--scheduler` at a closed port: a one-line error naming the address within the connect
timeout, and the study stays resumable."""

import socket

import pytest

from tests.helpers import FAKE, dqn_sweep


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.timeout(120)
def test_unreachable_scheduler_fails_fast_and_the_study_resumes(tmp_path):
    address = f"tcp://127.0.0.1:{closed_port()}"
    run_dir = tmp_path / "run"
    args = ["run", "studies/smoke.yaml", "--output", str(run_dir), "--n-trials", "1", "--entry", FAKE]
    # it gives up after the wait it was given (3 s, not the default 10 s), as its message says
    done = dqn_sweep(*args, "--scheduler", address, timeout=60, env={"DQN_SWEEP_CONNECT_TIMEOUT": "3"})
    assert done.returncode == 2
    assert done.stderr.startswith(f"error: cannot reach the Dask scheduler at {address} within 3 s")
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr

    done = dqn_sweep(*args, timeout=90)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "smoke: 1 trials finished" in done.stdout
