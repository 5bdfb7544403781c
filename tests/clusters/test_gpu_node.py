"""A GPU node simulated on CPU: `dask worker --resources GPU=4 --nthreads 2`, trials of 2 GPUs.

The recipe of docs/clusters.md for an 8-GPU node with k GPUs a trial, scaled to 4 GPUs: the
worker's GPU-id pool must give each concurrent trial two ids of its own, and the trial's config
must ask the trainer for exactly its GPUs (`devices: gpu:2`, a MirroredStrategy over them).
"""

import itertools
import json

import pytest
import yaml
from procs import dask_cluster, logs

from sweeps.results import load
from tests.helpers import dqn_sweep

pytestmark = pytest.mark.timeout(120)
ENTRY = "tests.fakes.gpu_trainer:train_population"


def test_concurrent_trials_get_distinct_gpu_ids(tmp_path):
    record = tmp_path / "record"
    record.mkdir()
    study = {
        "study": "gpu-node", "env_id": "CartPole-v1",
        # 10 evaluations of 150 ms: each run lasts ~1.5 s, so the two slots overlap
        "trainer": {"total_timesteps": 1000, "eval_freq": 100, "train_freq": 150},
        "space": {"learning_rate": {"type": "float", "low": 1e-3, "high": 1e-1, "log": True}},
        "budget": {"n_trials": 6}, "parallel": 4, "pruner": {"name": "none"},
        "resources": {"gpus": 2, "cpu_threads": 1}, "heldout": False,  # the six trials' runs only
    }
    path = tmp_path / "gpu.yaml"
    path.write_text(yaml.safe_dump(study))
    folder = tmp_path / "cluster"
    # parallel 4 asks for more than the node holds: the GPU resource (4 / 2) must cap it at 2
    with dask_cluster(folder, workers=[("gpu-node", ("--resources", "GPU=4", "--nthreads", "4"))],
                      env={"DQN_SWEEP_TEST_RECORD": str(record)}) as (address, _, _):
        done = dqn_sweep("run", str(path), "--scheduler", address, "--output", str(tmp_path / "run"),
                         "--entry", ENTRY, timeout=90)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:] + logs(folder)
    assert list(load(tmp_path / "run")["trials"]["state"]) == ["COMPLETE"] * 6

    runs = [json.loads(p.read_text()) for p in record.glob("*.json")]
    assert len(runs) == 6
    for run in runs:
        ids = run["cuda_visible_devices"].split(",")
        assert len(ids) == 2 and len(set(ids)) == 2 and set(ids) <= {"0", "1", "2", "3"}, run
        assert run["devices"] == "gpu:2"  # MirroredStrategy over the first 2 visible = the trial's own
    overlapping = [(a, b) for a, b in itertools.combinations(runs, 2)
                   if a["start"] < b["end"] and b["start"] < a["end"]]
    assert overlapping, "no two runs were concurrent: the test shows nothing"
    for a, b in overlapping:
        assert not set(a["cuda_visible_devices"].split(",")) & set(b["cuda_visible_devices"].split(",")), (a, b)
    # never more than 2 at once: 4 GPUs / 2 per trial
    for a, b, c in itertools.combinations(runs, 3):
        assert not (max(a["start"], b["start"], c["start"]) < min(a["end"], b["end"], c["end"]))
