"""End to end: `dqn-sweep run` on a real 2-worker LocalCluster with the real trainer.

Tiny budgets (2-3k CartPole steps, ~6 s a trial, half of it TensorFlow's import in the child).
"""

import functools
import json
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml

from sweeps.results import load
from sweeps.study import objective
from tests.helpers import BIN, dqn_sweep, study_file

pytestmark = pytest.mark.timeout(240)
cli = functools.partial(dqn_sweep, timeout=200, check=True)


def optuna_trials(run_dir: Path, study: str) -> list[dict]:
    done = subprocess.run(
        [str(BIN / "optuna"), "trials", "--storage", str(run_dir / "journal.log"),
         "--storage-class", "JournalFileBackend", "--study-name", study, "-f", "json"],
        check=False, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def test_smoke_run_writes_tables_optuna_reads_it_and_a_rerun_continues(tmp_path):
    run_dir = tmp_path / "run"
    cli("run", "studies/smoke.yaml", "--output", str(run_dir))
    tables = load(run_dir)
    assert list(tables["trials"]["state"]) == ["COMPLETE"] * 4
    assert {"params_learning_rate", "params_gamma", "params_net_arch", "env_steps", "steps_per_second",
            "wall_seconds", "worker", "fail_reason", "seeds"} <= set(tables["trials"].columns)
    assert (tables["trials"]["env_steps"] == 2000).all()
    assert len(tables["evals"]) == 4 * 4  # evals at 500, 1000, 1500, 2000
    assert len(tables["episodes"]) > 0 and set(tables["episodes"]["trial"]) == {0, 1, 2, 3}
    assert (run_dir / "study.yaml").exists()

    rows = optuna_trials(run_dir, "smoke")
    assert [row["state"] for row in rows] == ["COMPLETE"] * 4

    first = tables["trials"].copy()
    cli("run", "studies/smoke.yaml", "--output", str(run_dir), "--n-trials", "6")
    tables = load(run_dir)
    assert list(tables["trials"]["number"]) == list(range(6))
    pd.testing.assert_frame_equal(tables["trials"].iloc[:4][first.columns].reset_index(drop=True), first)
    assert len(optuna_trials(run_dir, "smoke")) == 6

    status = cli("status", str(run_dir)).stdout
    assert "6 complete" in status
    best = yaml.safe_load(cli("best", str(run_dir)).stdout)
    from dqn_tf.config import parse_config

    assert parse_config(best["config"]).total_timesteps == 2000
    assert best["value"] == tables["trials"]["value"].max()
    cli("export", str(run_dir), "--format", "csv", "--output", str(tmp_path / "csv"))
    assert len(pd.read_csv(tmp_path / "csv" / "trials.csv")) == 6


def test_pruned_trials_stop_early(tmp_path):
    STEPS = 10_000
    # Random sampler seed 2 draws CartPole, CartPole, then MountainCar: MountainCar's -200 at the
    # first evaluation is below every CartPole return, so the median pruner stops those runs.
    # On the Python loop 10k steps train for several seconds after the first evaluation; a stop
    # arrives within about a second (events, the driver, the worker's poll). The compiled loop
    # trains MountainCar's 10k steps in under one: the stop would come too late.
    path = study_file(
        tmp_path,
        trainer={"total_timesteps": STEPS, "loop": "python"},
        space={"env_id": {"type": "categorical", "choices": ["CartPole-v1", "MountainCar-v0"]},
               "learning_rate": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True}},
        budget={"n_trials": 5},
        sampler={"name": "random", "seed": 2, "options": {}},
        pruner={"name": "median", "options": {"n_startup_trials": 1}},
    )
    cli("run", str(path), "--output", str(tmp_path / "run"))
    trials = load(tmp_path / "run")["trials"]
    mountain = trials[trials["params_env_id"] == "MountainCar-v0"]
    assert len(mountain) >= 2 and (mountain["state"] == "PRUNED").all()
    assert (mountain["env_steps"] < STEPS).all()  # the runs stopped, not just the trial
    complete = trials[trials["state"] == "COMPLETE"]
    assert len(complete) >= 1 and (complete["env_steps"] == STEPS).all()


def test_seeds_aggregate_and_a_failing_trial_is_fail_with_its_reason(tmp_path):
    # exploration_final_eps 0.9 > exploration_initial_eps 0.5 breaks a cross-field rule that only
    # the sampled combination can break: that trial fails inside the trial's process.
    path = study_file(
        tmp_path,
        trainer={"exploration_initial_eps": 0.5},
        space={"learning_rate": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
               "exploration_final_eps": {"type": "categorical", "choices": [0.05, 0.9]}},
        seeds=2,
        objective={"metric": "last_k", "k": 2, "seed_aggregate": "mean"},
        budget={"n_trials": 2, "max_failed": 10},
        sampler={"name": "random", "seed": 0, "options": {}},
    )
    cli("run", str(path), "--output", str(tmp_path / "run"))
    tables = load(tmp_path / "run")
    trials = tables["trials"]
    complete, failed = trials[trials["state"] == "COMPLETE"], trials[trials["state"] == "FAIL"]
    assert len(complete) == 2 and len(failed) >= 1
    assert (failed["params_exploration_final_eps"] == 0.9).all()
    assert failed["fail_reason"].str.contains("exploration_final_eps = 0.9 must be <=").all()
    for _, row in complete.iterrows():
        evals = tables["evals"][tables["evals"]["trial"] == row["number"]]
        assert set(evals["seed"]) == {0, 1}
        per_seed = [objective.curve_metric(group.sort_values("step").to_dict("records"), "last_k", 2)
                    for _, group in evals.groupby("seed")]
        assert row["value"] == pytest.approx(sum(per_seed) / 2)
        assert row["env_steps"] == 2 * 2000


def test_packed_trials_train_in_one_task(tmp_path):
    space = {"net_arch": {"type": "categorical", "choices": [[32]]}}  # one shape: all four trials fit one task
    study = study_file(tmp_path, study="packed", space=space, pack=4, parallel=1)
    run_dir = tmp_path / "run"
    cli("run", str(study), "--output", str(run_dir))
    tables = load(run_dir)
    trials = tables["trials"]
    assert list(trials["state"]) == ["COMPLETE"] * 4
    assert [sorted(p) for p in trials["packed_with"]] == [[n for n in range(4) if n != m] for m in range(4)]
    assert trials["worker"].nunique() == 1 and (trials["env_steps"] == 2000).all()
    assert trials["params_learning_rate"].nunique() == 4
    assert tables["evals"].groupby("trial").size().tolist() == [4] * 4  # each trial its own evaluations


def test_n_envs_4_evaluations_compare_at_eval_freq_boundaries_and_prune(tmp_path):
    # n_envs 4 does not divide eval_freq 750: members evaluate at counters 752 and 2252, labelled
    # 750 and 2250, so both seeds and all trials report at the same steps and the pruner compares.
    # The Python loop and 6000 steps: its runs last long enough after an evaluation for a stop
    # to reach them.
    path = study_file(
        tmp_path,
        trainer={"total_timesteps": 6000, "n_envs": 4, "eval_freq": 750, "train_freq": 1, "learning_starts": 400,
                 "loop": "python"},
        space={"env_id": {"type": "categorical", "choices": ["CartPole-v1", "MountainCar-v0"]},
               "learning_rate": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True}},
        seeds=2,
        budget={"n_trials": 5},
        sampler={"name": "random", "seed": 2, "options": {}},
        pruner={"name": "median", "options": {"n_startup_trials": 1}},
    )
    run_dir = tmp_path / "run"
    cli("run", str(path), "--output", str(run_dir))
    from sweeps.store.storage import load_study

    trials = load_study(None, run_dir, "smoke").trials
    boundaries = list(range(750, 6001, 750))
    finished = [t for t in trials if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(finished) == 5
    assert sum(t.state.name == "PRUNED" for t in finished) >= 1
    for trial in finished:  # every boundary it reached, and all when it trained to the end
        steps = sorted(trial.intermediate_values)
        expected = boundaries if trial.state.name == "COMPLETE" else boundaries[: max(1, len(steps))]
        assert steps == expected
    evals = load(run_dir)["evals"]
    assert set(evals["step"]) <= set(boundaries)
    assert set(evals["env_steps"]) >= {752, 2252}  # the members' counters, past the boundaries


def test_best_then_train_reproduces_the_best_trials_curves_and_its_held_out_runs(tmp_path):
    """The number a sweep reports is what its config gets when trained again: `best` -> `train`
    gives the best trial's per-seed evaluation curves exactly, though the sweep trained it packed
    with another trial and its other seed in one population; and each of its held-out runs (its
    held-out seeds trained together, as one population in one task)."""
    path = study_file(
        tmp_path,
        trainer={"total_timesteps": 3000, "eval_freq": 750, "net_arch": [64, 64]},
        space={"learning_rate": {"type": "float", "low": 5e-4, "high": 5e-3, "log": True},
               "exploration_fraction": {"type": "float", "low": 0.05, "high": 0.3}},
        seeds=2, pack=2, parallel=1,
        budget={"n_trials": 2},
        sampler={"name": "random", "seed": 0, "options": {}},
        heldout={"top_k": 1, "seeds": 2, "baseline": None},
    )
    run_dir = tmp_path / "run"
    ran = cli("run", str(path), "--output", str(run_dir))
    assert "held-out (2 seeds): mean" in ran.stdout  # the run ends with the answer's held-out score
    tables = load(run_dir)
    trials = tables["trials"]
    best = int(trials.loc[trials["value"].idxmax(), "number"])
    assert list(trials.loc[trials["number"] == best, "packed_with"].iloc[0]) == [1 - best]
    cli("best", str(run_dir), "--output", str(tmp_path / "best.yaml"))
    answer = yaml.safe_load((tmp_path / "best.yaml").read_text())
    assert answer["trial"] == best and answer["heldout"]["seeds"] == [1000, 1001]
    heldout = tables["heldout"][tables["heldout"]["config"] == f"trial {best}"]
    curves = {}
    for seed in (1, 1001):  # member 1 of its tuning population and of its held-out one
        out = tmp_path / f"train{seed}"
        cli("train", "--config", str(tmp_path / "best.yaml"), "--set", f"seed={seed}", "--output", str(out))
        retrained = [(e["step"], e["mean_return"]) for e in json.loads((out / "result.json").read_text())["evals"]]
        swept = heldout[heldout["seed"] == seed] if seed >= 1000 else \
            tables["evals"][(tables["evals"]["trial"] == best) & (tables["evals"]["seed"] == seed)]
        curves[seed] = list(swept.sort_values("step")[["step", "mean_return"]].itertuples(index=False, name=None))
        assert retrained == curves[seed], seed
    assert curves[1] != curves[1001] and len(curves[1]) == len(curves[1001]) == 4
