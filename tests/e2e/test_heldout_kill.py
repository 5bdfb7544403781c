"""`dqn-sweep run` SIGKILLed during its held-out phase (fake trainer, its own LocalCluster), then
`dqn-sweep heldout` on the run folder: the rerun trains only the runs the killed session had not
finished, and every held-out run is in the table once."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from sweeps.results import load
from sweeps.store.run_folder import load_run
from sweeps.study.heldout import SESSION_ATTR
from tests.helpers import FAKE

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent / "dqn-sweep"

# Each run takes the fake trainer about 1.5 s (train_freq ms per eval_freq steps), one task at a time.
STUDY = {
    "study": "killed", "env_id": "CartPole-v1",
    "trainer": {"total_timesteps": 600, "eval_freq": 200, "train_freq": 500},
    "space": {"learning_rate": {"type": "float", "low": 1e-3, "high": 1e-1, "log": True}},
    "objective": {"metric": "final"}, "budget": {"n_trials": 1}, "parallel": 1,
    "sampler": {"name": "random", "seed": 0}, "pruner": {"name": "none"},
    "heldout": {"top_k": 1, "seeds": 2, "baseline": "defaults"},
}
RUNS = 2 * 2  # the trial's config and the baseline, two held-out seeds each


def keys(table: pd.DataFrame) -> set[tuple[str, int]]:
    return {(str(c), int(s)) for c, s in zip(table["config"], table["seed"])}


def logged(run_dir: Path) -> set[tuple[str, int]]:
    """The held-out runs in the rows logs a killed session left (written by the next session)."""
    found = set()
    for path in run_dir.glob(".rows-*.jsonl"):
        for line in path.read_text().splitlines():
            _, rows = json.loads(line)
            found |= {(row["config"], int(seed)) for seed, tables in rows.items() for row in tables.get("heldout", [])}
    return found


def wait_for_a_finished_and_a_checkpointed_config(run_dir: Path, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        table = load(run_dir, tables=["heldout"])["heldout"]
        done = {config for config, rows in table.groupby("config") if rows["seed"].nunique() == 2}
        saved = {p.parent.parent.name.replace("-", " ") for p in run_dir.glob("checkpoints/heldout/*/*/state.json")}
        if done and saved - done:
            return
        time.sleep(0.1)
    raise AssertionError(f"no held-out config finished while another checkpointed (exit code {proc.poll()})")


@pytest.mark.timeout(240)
def test_a_rerun_after_a_killed_driver_trains_only_the_missing_runs(tmp_path):
    study_file, run_dir = tmp_path / "study.yaml", tmp_path / "run"
    study_file.write_text(yaml.safe_dump(STUDY))
    proc = subprocess.Popen([str(BIN), "run", str(study_file), "--output", str(run_dir), "--entry", FAKE],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_a_finished_and_a_checkpointed_config(run_dir, proc, timeout=150)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    before = load(run_dir)["heldout"]
    finished = keys(before) | logged(run_dir)  # what the killed session finished: in its table and its log
    assert 0 < len(finished) < RUNS

    done = subprocess.run([str(BIN), "heldout", str(run_dir), "--entry", FAKE], cwd=ROOT, check=False,
                          capture_output=True, text=True, timeout=150)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert f"{RUNS - len(finished)} runs to train" in done.stdout
    study, _ = load_run(run_dir)
    (cost,) = [v for k, v in study.user_attrs.items() if k.startswith(SESSION_ATTR)]  # the killed one recorded none
    assert cost["runs"] == RUNS - len(finished) and cost["failed"] == 0

    after = load(run_dir)["heldout"]
    assert after.groupby(["config", "seed"]).size().eq(3).all() and len(keys(after)) == RUNS  # each run once
    kept = after.merge(before, on=["config", "seed", "step"], suffixes=("", "_before"))
    assert len(kept) == len(before) and (kept["mean_return"] == kept["mean_return_before"]).all()
    assert not list(run_dir.glob("checkpoints/heldout")) and not list(run_dir.glob(".rows-*"))
    assert "best: trial" in done.stdout and "baseline (defaults)" in done.stdout
