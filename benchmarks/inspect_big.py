"""Big run folders stay readable: `dqn-sweep status`, `dqn-sweep report` and `results.load` on
a run folder of N trials, timed.

    .venv/bin/python benchmarks/inspect_big.py --trials 10000 --keep runs/big   # build, then time
    .venv/bin/python benchmarks/inspect_big.py --run-dir runs/scale-10000       # time an existing one

Without --run-dir it first builds a synthetic run folder the way the driver fills one, without
a cluster: per trial an ask, the params, the attributes the driver records, --evals reports,
the tell (80% COMPLETE, 18% PRUNED, 2% FAIL with a reason), and its evaluations and
--episodes training episodes through the driver's results writer. `benchmarks/scale.py --keep
DIR` leaves a run folder of a real (simulated) sweep to time instead.
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
from optuna.trial import TrialState

from sweeps.driver.session import open_study
from sweeps.results import load
from sweeps.store.run_folder import save_run_info
from sweeps.store.writer import ResultsWriter
from sweeps.study import space
from sweeps.study.loading import parse_spec
from sweeps.study.spec import StudySpec

EPISODE_STEPS = 20


def make_spec(evals: int, episodes: int) -> StudySpec:
    freq = max(1, episodes * EPISODE_STEPS // evals)
    return parse_spec({
        "study": "big", "env_id": "CartPole-v1",
        "trainer": {"total_timesteps": freq * evals, "eval_freq": freq},
        "space": {"learning_rate": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
                  "gamma": {"type": "float", "low": 0.9, "high": 0.999},
                  "net_arch": {"type": "categorical", "choices": [[64, 64], [256, 256]]}},
        "objective": {"metric": "final"}, "budget": {"n_trials": 1},
        "sampler": {"name": "random", "seed": 0}, "pruner": {"name": "none"},
    })


def build(run_dir: Path, n: int, evals: int, episodes: int) -> None:
    spec = make_spec(evals, episodes)
    save_run_info(spec, run_dir, None)
    study = open_study(spec, run_dir, None)
    writer = ResultsWriter(run_dir, study)
    rng = random.Random(0)
    total, freq = spec.trainer["total_timesteps"], spec.trainer["eval_freq"]
    for number in range(n):
        trial = study.ask()
        params = space.suggest(trial, spec)
        for key, value in {"finished_when_asked": max(0, number - 16), "sampler_seed": 0, "seeds": [0],
                           "env_steps": total, "wall_seconds": 1.2, "train_seconds": 1.0, "startup_seconds": 0.1,
                           "steps_per_second": total / 1.0, "worker": f"tcp://127.0.0.1:{9000 + number % 16}",
                           "packed_with": [], "retries": 0, "process_reused": True, "process_tasks": 3}.items():
            trial.set_user_attr(key, value)
        fate = rng.random()
        reached = evals if fate < 0.8 else rng.randint(1, evals - 1)
        curve = [1000 * params["learning_rate"] * k / evals + rng.gauss(0, 5) for k in range(1, reached + 1)]
        for k, value in enumerate(curve, start=1):
            trial.report(value, k * freq)
        if fate < 0.8:
            study.tell(trial, curve[-1])
        elif fate < 0.98:
            study.tell(trial, state=TrialState.PRUNED)
        else:
            trial.set_user_attr("fail_reason", "seed 0: diverged: loss became nan at step 1000")
            study.tell(trial, state=TrialState.FAIL)
        steps = reached * freq
        writer.add_trial(number, {0: {
            "evals": [{"step": k * freq, "mean_return": v, "std_return": 1.0, "min_return": v - 1,
                       "max_return": v + 1, "env_steps": k * freq} for k, v in enumerate(curve, start=1)],
            "episodes": [{"episode": i, "step": (i + 1) * EPISODE_STEPS, "return": float(EPISODE_STEPS),
                          "length": EPISODE_STEPS} for i in range(steps // EPISODE_STEPS)],
        }})
        writer.changed()
        if number % 16 == 15:
            writer.flush()  # about what a sweep finishing 16 trials a second writes per flush
        if (number + 1) % 1000 == 0:
            print(f"built {number + 1} trials", flush=True)
    writer.close()


def timed_cli(*args: str) -> tuple[float, str]:
    began = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "sweeps.cli", *args], capture_output=True, text=True, check=True)
    return time.perf_counter() - began, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", type=Path, default=None, help="time this run folder (no build)")
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--evals", type=int, default=10)
    parser.add_argument("--episodes", type=int, default=300)
    parser.add_argument("--keep", type=Path, default=None, help="where to build (default: a temporary folder)")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="big-") as tmp:
        run_dir = args.run_dir or args.keep or Path(tmp) / "run"
        if args.run_dir is None:
            began = time.perf_counter()
            build(run_dir, args.trials, args.evals, args.episodes)
            print(f"built {args.trials} trials in {time.perf_counter() - began:.0f} s")
        files = sum(1 for _ in run_dir.rglob("*.parquet"))
        size = sum(p.stat().st_size for p in run_dir.rglob("*") if p.is_file()) / 1e6
        print(f"{run_dir}: {files} Parquet files, {size:.0f} MB")
        began = time.perf_counter()
        tables = load(run_dir)
        rows = ", ".join(f"{name} {len(frame):,}" for name, frame in tables.items())
        print(f"results.load: {time.perf_counter() - began:.1f} s ({rows} rows)")
        seconds, out = timed_cli("status", str(run_dir))
        print(f"dqn-sweep status: {seconds:.1f} s; it said: {out.splitlines()[0] if out else ''}")
        seconds, out = timed_cli("report", str(run_dir), "--output", str(Path(tmp) / "report.html"))
        print(f"dqn-sweep report: {seconds:.1f} s; {out.strip()}")


if __name__ == "__main__":
    main()
