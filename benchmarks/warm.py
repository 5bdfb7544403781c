"""Warm trial processes: start-up of a process's first task vs its reused ones, and how the
child's memory grows per reused task (the figure `resources.max_process_rss_mb` is set from).

    .venv/bin/python benchmarks/warm.py [--study studies/smoke.yaml] [--trials 60] [--parallel 1]
    .venv/bin/python benchmarks/warm.py --trials 60 --max-tasks 25 --compare   # recycling, and reuse off

Runs a sweep of the study (pruning off, `resources.max_process_rss_mb` off unless given) on a
fresh LocalCluster and reads what `trials.parquet` recorded per trial: `process_tasks` (the
task's index in its process), `process_reused`, `startup_seconds` (task start to the child
ready for it) and `process_rss_mb` (the child's RSS after the task). Prints start-up of first
vs reused tasks, RSS per task index (mean over processes) and the growth per reused task (the
least-squares slope of RSS over the task index, tasks 2 and later), and trials/hour. With
`--compare`, the same sweep again with `reuse_processes: false`. `--parallel 1` keeps every
task on one worker, so task indices run 1, 2, ... up to `--max-tasks`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from sweeps.driver.cluster import connect
from sweeps.driver.loop import Driver
from sweeps.driver.session import open_study
from sweeps.results import load
from sweeps.study.loading import load_spec


def sweep(study: Path, trials: int, parallel: int, reuse: bool, max_tasks: int,
          max_rss_mb: float | None) -> tuple[pd.DataFrame, float]:
    """(trials table, sweep wall seconds) of one sweep on a fresh cluster and run folder."""
    resources = {"reuse_processes": reuse}
    if reuse:
        resources.update(max_tasks_per_process=max_tasks, max_process_rss_mb=max_rss_mb)
    overrides = {"budget.n_trials": trials, "budget.timeout": None, "parallel": parallel,
                 "pruner": {"name": "none"}, **{f"resources.{k}": v for k, v in resources.items()}}
    spec = load_spec(study, overrides)
    run_dir = Path(tempfile.mkdtemp(prefix="bench-warm-"))
    try:
        with connect(None, parallel, 0, lambda line: None) as client:
            started = time.perf_counter()
            Driver(spec, open_study(spec, run_dir, None), client, run_dir).drive()
            wall = time.perf_counter() - started
        frame = load(run_dir)["trials"]
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
    assert (frame["state"] == "COMPLETE").all(), frame[["state", "fail_reason"]]
    return frame, wall


def growth_per_task(frame: pd.DataFrame) -> float | None:
    """MiB of child RSS added per reused task: slope of RSS over the task index (tasks >= 2)."""
    reused = frame[frame["process_tasks"] >= 2].dropna(subset=["process_rss_mb"])
    if reused["process_tasks"].nunique() < 2:
        return None
    return float(np.polyfit(reused["process_tasks"], reused["process_rss_mb"], 1)[0])


def report(frame: pd.DataFrame, wall: float, label: str) -> None:
    first, reused = frame[~frame["process_reused"].astype(bool)], frame[frame["process_reused"].astype(bool)]
    print(f"\n{label}: {len(frame)} trials in {wall:.1f} s, {len(frame) / wall * 3600:.0f} trials/hour; "
          f"{len(first)} task(s) in a fresh process, {len(reused)} reused")
    for name, part in (("fresh", first), ("reused", reused)):
        if len(part):
            print(f"  startup_seconds {name:>6}: mean {part['startup_seconds'].mean():.3f}  "
                  f"median {part['startup_seconds'].median():.3f}  max {part['startup_seconds'].max():.3f}")
    if not len(reused):
        return
    print("  task index  tasks  child RSS MiB (mean)  startup_s (mean)")
    by_index = frame.groupby("process_tasks").agg(n=("number", "size"), rss=("process_rss_mb", "mean"),
                                                  startup=("startup_seconds", "mean"))
    for index, row in by_index.iterrows():
        print(f"  {index:>10}  {int(row['n']):>5}  {row['rss']:>20.1f}  {row['startup']:>16.3f}")
    slope = growth_per_task(frame)
    if slope is not None:
        print(f"  child RSS growth per reused task: {slope:+.1f} MiB/task "
              f"(first task {first['process_rss_mb'].mean():.0f} MiB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", type=Path, default=Path("studies/smoke.yaml"))
    parser.add_argument("--trials", type=int, default=60)
    parser.add_argument("--parallel", type=int, default=1)
    parser.add_argument("--max-tasks", type=int, default=50, help="resources.max_tasks_per_process")
    parser.add_argument("--max-rss-mb", type=float, default=None, help="resources.max_process_rss_mb (default: off)")
    parser.add_argument("--compare", action="store_true", help="also run the sweep with reuse_processes: false")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    runs = [(True, *sweep(args.study, args.trials, args.parallel, True, args.max_tasks, args.max_rss_mb))]
    if args.compare:
        runs.append((False, *sweep(args.study, args.trials, args.parallel, False, args.max_tasks, None)))
    print(f"study {args.study}, {args.trials} trials, parallel {args.parallel}, max_tasks_per_process "
          f"{args.max_tasks}, max_process_rss_mb {args.max_rss_mb}; {os.cpu_count()} cores, load average "
          f"{load_before:.2f} before / {os.getloadavg()[0]:.2f} after (other work skews it)")
    for reuse, frame, wall in runs:
        report(frame, wall, "reuse_processes: true" if reuse else "reuse_processes: false")
    if args.compare:
        print(f"\ntrials/hour with warm processes vs a fresh process per task: "
              f"{runs[1][2] / runs[0][2]:.2f}x")


if __name__ == "__main__":
    main()
