"""Population speed: K members (seeds 0..K-1) in one process and one compiled train call, vs one.

    python benchmarks/population.py                        # (a) and (b), K = 1 4 8 16, core 0
    python benchmarks/population.py --configs a --members 1 8 --core 1
    python benchmarks/population.py --net-arch 64 64       # a small net: overhead-bound steps
    python benchmarks/population.py --devices cpu:2        # data-parallel MirroredStrategy
    python benchmarks/population.py --members 1 4 --prune-others-at 5000   # a pack of 4, 3 pruned early

Each (config, K) runs in a fresh interpreter pinned to one core with 1+1 TF threads, one after
the other. Prints wall time, its ratio to K = 1 ("8 members in <= 2x the wall time of one" is
the target) and where the time goes. With `--prune-others-at STEP` every member but the first is
stopped at its evaluation at STEP (as the sweep prunes a packed trial): the row's wall time is then
what one surviving member costs when it shares its task with 3 pruned ones. Asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from trainer import ONE_CORE_ENV, RL_ZOO_CARTPOLE, TRAIN_FREQ_4

CONFIGS = {
    "a": ("(a) rl-zoo CartPole-v1 (train_freq 256, gradient_steps 128)", RL_ZOO_CARTPOLE),
    "b": ("(b) same, train_freq 4 / gradient_steps 1", TRAIN_FREQ_4),
}


def run_isolated(config: dict, members: int, core: int, prune_at: int | None = None) -> dict:
    env = {**os.environ, **ONE_CORE_ENV}
    started = time.perf_counter()
    completed = subprocess.run(
        [sys.executable, __file__, "--worker", json.dumps(config), "--k", str(members), "--core", str(core),
         *(["--prune-others-at", str(prune_at)] if prune_at is not None else [])],
        capture_output=True, text=True, env=env, check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(completed.stderr[-2000:])
    summary = json.loads(completed.stdout.strip().splitlines()[-1])
    summary["process_seconds"] = time.perf_counter() - started
    return summary


def worker(config: dict, members: int, core: int, prune_at: int | None) -> None:
    os.sched_setaffinity(0, {core})
    from dqn_tf import train_population

    def prune_others(event: dict) -> str | None:
        pruned = prune_at is not None and event["member"] > 0 and event["event"] == "eval"
        return "pruned" if pruned and event["step"] >= prune_at else None

    results = train_population([{**config, "seed": seed} for seed in range(members)], on_event=prune_others)
    best = [max(e["mean_return"] for e in r.evals) for r in results]
    print(json.dumps({
        "members": members, "wall_seconds": results[0].wall_seconds, "timings": results[0].timings,
        "env_steps": sum(r.env_steps for r in results), "best_evals": best,
        "solved": sum(b >= 475 for b in best), "replicas": results[0].replicas,
    }))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="+", default=["a", "b"], choices=sorted(CONFIGS))
    parser.add_argument("--members", nargs="+", type=int, default=[1, 4, 8, 16])
    parser.add_argument("--core", type=int, default=0)
    parser.add_argument("--net-arch", nargs="+", type=int, help="override net_arch, e.g. 64 64")
    parser.add_argument("--timesteps", type=int, help="override total_timesteps")
    parser.add_argument("--devices", help="override devices, e.g. cpu:2")
    parser.add_argument("--prune-others-at", type=int, help="stop every member but the first at this eval step")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--k", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(json.loads(args.worker), args.k, args.core, args.prune_others_at)
    overrides = {"net_arch": args.net_arch, "total_timesteps": args.timesteps, "devices": args.devices}
    overrides = {key: value for key, value in overrides.items() if value is not None}
    pruning = f"; members 1.. pruned at step {args.prune_others_at}" if args.prune_others_at is not None else ""
    print(f"one fresh process per row, pinned to core {args.core}, 1+1 TF threads; overrides: {overrides or 'none'}"
          + pruning)
    for name in args.configs:
        title, config = CONFIGS[name]
        print(f"\n{title}")
        print(f"  {'K':>3} {'wall s':>8} {'x K=1':>6} {'train s':>8} {'collect s':>9} {'eval s':>7} "
              f"{'env steps/s (all)':>17}  solved")
        base = None
        for members in args.members:
            summary = run_isolated({**config, **overrides}, members, args.core, args.prune_others_at)
            wall, t = summary["wall_seconds"], summary["timings"]
            base = base or (wall if members == 1 else None)
            ratio = f"{wall / base:6.2f}" if base else f"{'-':>6}"
            print(f"  {members:>3} {wall:8.1f} {ratio} {t['train_seconds']:8.1f} {t['collect_seconds']:9.1f} "
                  f"{t['eval_seconds']:7.1f} {summary['env_steps'] / wall:17,.0f}  "
                  f"{summary['solved']}/{members}", flush=True)


if __name__ == "__main__":
    main()
