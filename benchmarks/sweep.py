"""Sweep throughput: trials/hour at parallelism 1 and 2 on the same study, and where a trial's
wall time goes (trainer, child process start-up incl. TensorFlow import, driver overhead).

    .venv/bin/python benchmarks/sweep.py [--study studies/smoke.yaml] [--trials 6]

Cluster start-up is timed apart; each sweep runs on a fresh run folder and a fresh cluster.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

from sweeps.cluster import connect
from sweeps.driver import Driver
from sweeps.results import load
from sweeps.session import open_study
from sweeps.spec import load_spec


def sweep(study: Path, trials: int, parallel: int) -> dict[str, float]:
    spec = load_spec(study, {"budget.n_trials": trials, "budget.timeout": None, "parallel": parallel,
                             "pruner": {"name": "none"}})
    run_dir = Path(tempfile.mkdtemp(prefix=f"bench-p{parallel}-"))
    try:
        started = time.perf_counter()
        with connect(None, parallel, 0, lambda line: None) as client:
            cluster_s = time.perf_counter() - started
            study_obj = open_study(spec, run_dir, None)
            started = time.perf_counter()
            Driver(spec, study_obj, client, run_dir).run()
            wall = time.perf_counter() - started
        frame = load(run_dir)["trials"]
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
    assert (frame["state"] == "COMPLETE").all(), frame[["state", "fail_reason"]]
    runs = len(frame) * len(spec.seed_list)
    return {
        "parallel": parallel,
        "cluster_s": cluster_s,
        "wall_s": wall,
        "trials_per_hour": len(frame) / wall * 3600,
        "train_s": frame["train_seconds"].sum() / runs,
        "child_s": (frame["wall_seconds"].sum() - frame["train_seconds"].sum()) / runs,
        "startup_s": frame["startup_seconds"].mean(),
        # at parallel 1 runs go back to back: from the first trial's start to the last one's end,
        # what the child processes did not use is the driver's (ask, submit, relay, tell, tables)
        "driver_s": (span_seconds(frame) - frame["wall_seconds"].sum()) / runs,
        "first_s": (wall - span_seconds(frame)),
    }


def span_seconds(frame) -> float:
    return (frame["datetime_complete"].max() - frame["datetime_start"].min()).total_seconds()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", type=Path, default=Path("studies/smoke.yaml"))
    parser.add_argument("--trials", type=int, default=6)
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    rows = [sweep(args.study, args.trials, parallel) for parallel in (1, 2)]
    print(f"study {args.study}, {args.trials} trials per sweep, pruning off; {os.cpu_count()} cores, "
          f"load average {load_before:.2f} before / {os.getloadavg()[0]:.2f} after (other work skews it)")
    print("parallel  cluster_s  wall_s  trials/hour  train_s/run  child_s/run (startup)  driver_s/run")
    for r in rows:
        driver = f"{r['driver_s']:.2f}" if r["parallel"] == 1 else "-"
        print(f"{r['parallel']:>8}  {r['cluster_s']:>9.2f}  {r['wall_s']:>6.1f}  {r['trials_per_hour']:>11.0f}  "
              f"{r['train_s']:>11.2f}  {r['child_s']:>11.2f} ({r['startup_s']:.2f})  {driver:>12}")
    print(f"speed-up with 2 workers: {rows[1]['trials_per_hour'] / rows[0]['trials_per_hour']:.2f}x")
    print(f"driver overhead per trial (parallel 1, beyond the child process): {rows[0]['driver_s']:.2f} s; "
          f"once per sweep (before the first ask, after the last tell): {rows[0]['first_s']:.2f} s")


if __name__ == "__main__":
    main()
