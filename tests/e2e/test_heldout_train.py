"""The held-out phase with the real trainer: a held-out run is what `dqn-sweep train` gives for
the answer's config and that seed (the config's held-out seeds trained together, as one
population in one task, each member its own solo run)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sweeps.results import load

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent / "dqn-sweep"


def cli(*args: str) -> subprocess.CompletedProcess:
    done = subprocess.run([str(BIN), *args], cwd=ROOT, check=False, capture_output=True, text=True, timeout=200)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


@pytest.mark.timeout(300)
def test_a_held_out_run_is_what_train_gives_for_that_config_and_seed(tmp_path):
    study = yaml.safe_load((ROOT / "studies" / "smoke.yaml").read_text())
    study.update(heldout={"top_k": 1, "seeds": 2, "baseline": None}, budget={"n_trials": 1})
    path, run_dir = tmp_path / "study.yaml", tmp_path / "run"
    path.write_text(yaml.safe_dump(study))
    ran = cli("run", str(path), "--output", str(run_dir))
    assert "held-out (2 seeds): mean" in ran.stdout  # the run ends with the answer's held-out score

    cli("best", str(run_dir), "--output", str(tmp_path / "best.yaml"))
    best = yaml.safe_load((tmp_path / "best.yaml").read_text())
    assert best["heldout"]["seeds"] == [1000, 1001] and best["config"]["seed"] == 0  # tuned on seed 0
    table = load(run_dir)["heldout"]
    runs = table[table["config"] == f"trial {best['trial']}"]
    curves = {seed: list(rows.sort_values("step")[["step", "mean_return"]].itertuples(index=False, name=None))
              for seed, rows in runs.groupby("seed")}
    assert curves[1000] != curves[1001] and len(curves[1001]) == 4  # evaluations at 500 ... 2000
    out = tmp_path / "train"
    cli("train", "--config", str(tmp_path / "best.yaml"), "--set", "seed=1001", "--output", str(out))
    retrained = [(e["step"], e["mean_return"]) for e in json.loads((out / "result.json").read_text())["evals"]]
    assert retrained == curves[1001]  # member 1 of the held-out population is its solo run
