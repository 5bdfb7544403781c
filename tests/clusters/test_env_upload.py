"""The user's env code on a real `dask scheduler` + `dask worker` whose PYTHONPATH lacks it.

Without `--upload` the driver (which has the package) stops before the first trial with the
worker's error naming the package and the worker; with `--upload PATH` (the package folder; the
driver's PYTHONPATH lacks it too) the sweep completes with the real trainer, and a worker that
joins afterwards gets the code as well.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from distributed import Client

from sweeps.results import load
from sweeps.store.storage import load_study
from sweeps.worker.env_probe import probe_env
from tests.clusters.procs import dask_cluster, logs, start_worker, stop

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "examples" / "custom_env" / "corridor_env"
BIN = Path(sys.executable).parent / "dqn-sweep"
pytestmark = pytest.mark.timeout(300)


def cli(*args: str, python_path: list[Path]) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(map(str, python_path))}
    return subprocess.run([str(BIN), *args], cwd=ROOT, env=env, check=False, capture_output=True, text=True, timeout=240)


def test_upload_reaches_workers_without_the_package_and_without_it_the_sweep_stops_early(tmp_path):
    study = {
        "study": "corridor", "env_id": "corridor_env:Corridor-v0",
        "trainer": {"total_timesteps": 400, "learning_starts": 100, "train_freq": 4, "gradient_steps": 1,
                    "eval_freq": 200, "n_eval_episodes": 2, "net_arch": [16], "buffer_size": 400,
                    "env_kwargs": {"max_steps": 12}},
        "space": {"learning_rate": {"type": "float", "low": 1e-4, "high": 1e-3, "log": True}},
        "budget": {"n_trials": 1}, "parallel": 1, "pruner": {"name": "none"}, "heldout": False,
    }
    path = tmp_path / "corridor.yaml"
    path.write_text(yaml.safe_dump(study))
    run_dir = tmp_path / "run"
    with dask_cluster(tmp_path / "cluster", workers=(("w1", ()),), env={"PYTHONPATH": str(ROOT)}) as (address, _, _):
        refused = cli("run", str(path), "--scheduler", address, "--output", str(run_dir),
                      python_path=[ROOT, PACKAGE.parent])
        assert refused.returncode == 2, refused.stdout[-2000:] + refused.stderr[-2000:]
        assert "1 of 1 worker(s) cannot make env_id = 'corridor_env:Corridor-v0'" in refused.stderr
        assert "tcp://127.0.0.1:" in refused.stderr and "No module named 'corridor_env'" in refused.stderr
        assert "--upload" in refused.stderr and "Traceback" not in refused.stderr
        assert load_study(None, run_dir, "corridor").trials == []  # no trial started

        done = cli("run", str(path), "--scheduler", address, "--output", str(run_dir), "--upload", str(PACKAGE),
                   python_path=[ROOT])
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:] + logs(tmp_path / "cluster")
        assert "env: 1 worker(s) made corridor_env:Corridor-v0" in done.stdout
        tables = load(run_dir)
        assert list(tables["trials"]["state"]) == ["COMPLETE"]
        assert tables["episodes"]["length"].max() == 12  # the uploaded env, with its kwargs

        late = start_worker(address, tmp_path / "cluster", "w2", env={"PYTHONPATH": str(ROOT)})
        try:
            with Client(address, timeout=60) as client:
                client.wait_for_workers(2, timeout=60)
                newcomer = next(w for w, info in client.scheduler_info(n_workers=-1)["workers"].items()
                                if info.get("name") == "w2")
                config = {"env_id": "corridor_env:Corridor-v0", "env_kwargs": {"max_steps": 12}}
                answer = client.submit(probe_env, config, [], workers=[newcomer], pure=False).result(timeout=120)
            assert answer == {"worker": newcomer, "error": None}
        finally:
            stop(late)
