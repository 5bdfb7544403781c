"""Member k of a compiled-loop population against its solo run, bit for bit, on configs larger
and longer than the tests can afford (the tests check the mechanisms on short runs).

    python benchmarks/members_vs_solo.py [--steps-scale 1.0]

Prints, per config, how many of 3 seeds give the same evaluations and episodes alone as in a
population of 3, and the wall time of the check.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")

CASES = {
    "CartPole, issue 24's winner (64x64)": {
        "env_id": "CartPole-v1", "total_timesteps": 30_000, "net_arch": [64, 64], "batch_size": 128,
        "train_freq": 256, "gradient_steps": 64, "eval_freq": 5000, "n_eval_episodes": 5},
    "CartPole, rl-zoo's defaults (256x256)": {"env_id": "CartPole-v1", "total_timesteps": 30_000, "eval_freq": 5000},
    "Acrobot, one evaluation episode": {
        "env_id": "Acrobot-v1", "total_timesteps": 20_000, "eval_freq": 5000, "n_eval_episodes": 1},
    "MountainCar, n_envs 4": {"env_id": "MountainCar-v0", "total_timesteps": 20_000, "n_envs": 4, "eval_freq": 5000},
    "MinAtar Breakout": {
        "env_id": "MinAtar/Breakout-v1", "total_timesteps": 20_000, "eval_freq": 5000, "learning_starts": 1000,
        "buffer_size": 20_000},
}
SEEDS = (11, 12, 13)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps-scale", type=float, default=1.0, help="multiply every run's total_timesteps")
    args = parser.parse_args()
    from dqn_tf import train_population

    for name, config in CASES.items():
        started = time.perf_counter()
        config = {**config, "loop": "compiled",
                  "total_timesteps": int(config["total_timesteps"] * args.steps_scale)}
        together = train_population([{**config, "seed": seed} for seed in SEEDS])
        equal = 0
        for k, seed in enumerate(SEEDS):
            (alone,) = train_population([{**config, "seed": seed}])
            equal += alone.evals == together[k].evals and alone.episodes == together[k].episodes
        print(f"{name}, {config['total_timesteps']:,} steps: {equal}/{len(SEEDS)} members equal to their solo runs "
              f"({time.perf_counter() - started:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
