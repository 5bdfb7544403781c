"""Sweep throughput: trials/hour at parallelism 1 and 2 on the same study, and where a trial's
wall time goes (trainer, child process start-up incl. TensorFlow import, driver overhead).

    .venv/bin/python benchmarks/sweep.py [--study studies/smoke.yaml] [--trials 6] [--seeds 3]
    .venv/bin/python benchmarks/sweep.py --seeds 3 --populations   # seeds as one task vs one each
    .venv/bin/python benchmarks/sweep.py --pack 4 --trials 16      # 4 same-shaped trials a task vs 1
    .venv/bin/python benchmarks/sweep.py --informed runs/cartpole   # the asks figure of existing runs

`--populations` compares, at parallelism 2, a trial's seeds trained as one population task (the
default) with one task per seed (`population: false`). `--pack N` compares, at parallelism 2,
one trial per task with up to N same-shaped trials per task (only trials that agree on
net_arch, batch_size, ... pack: see `tasks` per sweep).

Every sweep also prints "asks informed by >= 1 finished trial: X of N": the trials that started
after some other trial had finished (COMPLETE or PRUNED), i.e. the sampler had a result to learn
from when it asked them. It is computed from the trials table's timestamps only, so
`--informed RUN_DIR ...` gives the same figure for run folders written by any version.

Cluster start-up is timed apart; each sweep runs on a fresh run folder and a fresh cluster.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

from sweeps.driver.cluster import connect
from sweeps.driver.loop import Driver
from sweeps.driver.session import open_study
from sweeps.results import load
from sweeps.study.loading import load_spec


def sweep(
    study: Path, trials: int, parallel: int, seeds: int | None, population: bool = True, pack: int = 1
) -> dict[str, float]:
    overrides = {"budget.n_trials": trials, "budget.timeout": None, "parallel": parallel,
                 "pruner": {"name": "none"}, "population": population, "pack": pack}
    if seeds is not None:
        overrides["seeds"] = seeds
    spec = load_spec(study, overrides)
    run_dir = Path(tempfile.mkdtemp(prefix=f"bench-p{parallel}-"))
    try:
        started = time.perf_counter()
        with connect(None, parallel, 0, lambda line: None) as client:
            cluster_s = time.perf_counter() - started
            study_obj = open_study(spec, run_dir, None)
            started = time.perf_counter()
            Driver(spec, study_obj, client, run_dir).drive()
            wall = time.perf_counter() - started
        frame = load(run_dir)["trials"]
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
    assert (frame["state"] == "COMPLETE").all(), frame[["state", "fail_reason"]]
    share = 1 / (frame["packed_with"].map(len) + 1)  # packed trials each record their whole task's seconds
    runs = share.sum() * (1 if population else len(spec.seed_list))  # tasks, each a child process
    wall_seconds, train_seconds = (frame["wall_seconds"] * share).sum(), (frame["train_seconds"] * share).sum()
    informed, asked = informed_asks(frame)
    return {
        "informed": informed,
        "asked": asked,
        "parallel": parallel,
        "population": population,
        "pack": pack,
        "tasks": runs,
        "cluster_s": cluster_s,
        "wall_s": wall,
        "trials_per_hour": len(frame) / wall * 3600,
        "train_s": train_seconds / runs,
        "child_s": (wall_seconds - train_seconds) / runs,
        "startup_s": frame["startup_seconds"].mean(),
        # at parallel 1 runs go back to back: from the first trial's start to the last one's end,
        # what the child processes did not use is the driver's (ask, submit, relay, tell, tables)
        "driver_s": (span_seconds(frame) - wall_seconds) / runs,
        "first_s": (wall - span_seconds(frame)),
    }


def informed_asks(frame) -> tuple[int, int]:
    """(trials started after another trial finished, trials), from the trials table: a trial is
    informed when some other COMPLETE or PRUNED trial's datetime_complete < its datetime_start."""
    done = frame[frame["state"].isin(["COMPLETE", "PRUNED"])]
    informed = sum(
        bool(((done["datetime_complete"] < start) & (done["number"] != number)).any())
        for number, start in zip(frame["number"], frame["datetime_start"])
    )
    return informed, len(frame)


def span_seconds(frame) -> float:
    return (frame["datetime_complete"].max() - frame["datetime_start"].min()).total_seconds()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", type=Path, default=Path("studies/smoke.yaml"))
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--seeds", type=int, default=None, help="seeds per trial (default: the study's)")
    parser.add_argument("--populations", action="store_true", help="population task vs one task per seed")
    parser.add_argument("--pack", type=int, default=None, help="up to N same-shaped trials per task vs 1")
    parser.add_argument("--informed", type=Path, nargs="+", metavar="RUN_DIR",
                        help="only print the asks figure of these run folders' trials tables")
    args = parser.parse_args()
    if args.informed:
        for run_dir in args.informed:
            informed, asked = informed_asks(load(run_dir)["trials"])
            print(f"{run_dir}: asks informed by >= 1 finished trial: {informed} of {asked}")
        return
    load_before = os.getloadavg()[0]
    if args.populations:
        rows = [sweep(args.study, args.trials, 2, args.seeds, population) for population in (True, False)]
    elif args.pack:
        rows = [sweep(args.study, args.trials, 2, args.seeds, pack=pack) for pack in (args.pack, 1)]
    else:
        rows = [sweep(args.study, args.trials, parallel, args.seeds) for parallel in (1, 2)]
    print(f"study {args.study}, {args.trials} trials per sweep, seeds {args.seeds or 'as in the study'}, "
          f"pruning off; {os.cpu_count()} cores, load average {load_before:.2f} before / "
          f"{os.getloadavg()[0]:.2f} after (other work skews it)")
    print("parallel  population  pack  tasks  cluster_s  wall_s  trials/hour  train_s/task  child_s/task (startup)"
          "  driver_s/task")
    for r in rows:
        driver = f"{r['driver_s']:.2f}" if r["parallel"] == 1 else "-"
        print(f"{r['parallel']:>8}  {r['population']!s:>10}  {r['pack']:>4}  {r['tasks']:>5.0f}  "
              f"{r['cluster_s']:>9.2f}  {r['wall_s']:>6.1f}  "
              f"{r['trials_per_hour']:>11.0f}  {r['train_s']:>12.2f}  {r['child_s']:>12.2f} ({r['startup_s']:.2f})  "
              f"{driver:>13}")
    for r in rows:
        print(f"parallel {r['parallel']}, population {r['population']}, pack {r['pack']}: "
              f"asks informed by >= 1 finished trial: {r['informed']} of {r['asked']}")
    ratio = rows[0]["trials_per_hour"] / rows[1]["trials_per_hour"]
    if args.populations:
        print(f"trials/hour with populations vs one task per seed: {ratio:.2f}x")
        return
    if args.pack:
        print(f"trials/hour packing up to {args.pack} trials per task vs one: {ratio:.2f}x")
        return
    print(f"speed-up with 2 workers: {1 / ratio:.2f}x")
    print(f"driver overhead per trial (parallel 1, beyond the child process): {rows[0]['driver_s']:.2f} s; "
          f"once per sweep (before the first ask, after the last tell): {rows[0]['first_s']:.2f} s")


if __name__ == "__main__":
    main()
