"""Checkpoint cost of one sweep task: bytes and seconds per save, saves per evaluation round.

    python benchmarks/checkpoints.py                 # cartpole study settings, pack 1 and pack 4
    PYTHONPATH=OLD_CHECKOUT python benchmarks/checkpoints.py   # the same figures for another version

A task trains `pack` trials x `seeds` members as one population with a checkpoint folder, as the
sweep does when workers see the run folder. Every `dqn_tf.checkpoint.save` call is timed and the
folder measured after it, so the script reads any version of the trainer. Each pack size runs in a
fresh process pinned to one core. Asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# studies/cartpole.yaml's trainer settings (a 256x256 trial), stopped after 3 evaluation rounds.
CARTPOLE = {"env_id": "CartPole-v1", "total_timesteps": 50_000, "learning_starts": 1000, "buffer_size": 100_000,
            "eval_freq": 5000, "n_eval_episodes": 10, "net_arch": [256, 256], "train_freq": 256,
            "gradient_steps": 64}
ONE_CORE_ENV = {"TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}


class Stop(Exception):
    pass


def worker(pack: int, seeds: int, rounds: int) -> None:
    os.sched_setaffinity(0, {0})
    from dqn_tf import checkpoint, train_population

    saves: list[tuple[float, int]] = []
    original = checkpoint.save

    def timed_save(folder, *args, **kwargs):
        started = time.perf_counter()
        out = original(folder, *args, **kwargs)
        seconds = time.perf_counter() - started
        saves.append((seconds, sum(f.stat().st_size for f in Path(folder).iterdir() if f.is_file())))
        return out

    checkpoint.save = timed_save
    stop_after = rounds * CARTPOLE["eval_freq"]

    def on_event(event: dict) -> None:
        if event["event"] == "progress" and event["step"] > stop_after:
            raise Stop  # as a lost worker would: the last checkpoint is what a rerun resumes from

    configs = [{**CARTPOLE, "seed": seed, "learning_rate": 1e-3 * (1 + trial)}
               for trial in range(pack) for seed in range(seeds)]
    with tempfile.TemporaryDirectory() as folder:
        try:
            train_population(configs, on_event=on_event, checkpoint_dir=folder)
        except Stop:
            pass
    print(json.dumps({"pack": pack, "members": len(configs), "saves": saves, "rounds": rounds}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--packs", nargs="+", type=int, default=[1, 4])
    parser.add_argument("--seeds", type=int, default=2, help="seeds per trial (the cartpole study's 2)")
    parser.add_argument("--rounds", type=int, default=3, help="evaluation rounds before the stop")
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args.worker, args.seeds, args.rounds)
    import dqn_tf

    print(f"trainer at {Path(dqn_tf.__file__).parent}; cartpole study settings, {args.seeds} seeds per trial, "
          f"{args.rounds} evaluation rounds, one core")
    print(f"{'pack':>4} {'members':>7} {'saves':>5} {'saves/round':>11} {'MB/save (last)':>14} "
          f"{'s/save (mean)':>13} {'s/round':>8}")
    for pack in args.packs:
        completed = subprocess.run([sys.executable, __file__, "--worker", str(pack), "--seeds", str(args.seeds),
                                    "--rounds", str(args.rounds)], capture_output=True, text=True,
                                   env={**os.environ, **ONE_CORE_ENV}, check=True)
        r = json.loads(completed.stdout.strip().splitlines()[-1])
        seconds = [s for s, _ in r["saves"]]
        print(f"{pack:>4} {r['members']:>7} {len(seconds):>5} {len(seconds) / r['rounds']:>11.1f} "
              f"{r['saves'][-1][1] / 1e6:>14.1f} {sum(seconds) / len(seconds):>13.3f} "
              f"{sum(seconds) / r['rounds']:>8.3f}", flush=True)


if __name__ == "__main__":
    main()
