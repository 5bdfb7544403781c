"""Trainer speed and solve rate, both loops and the peers side by side, each run in a fresh
process pinned to one core.

    python benchmarks/trainer.py                 # (a) rl-zoo CartPole, (b) train_freq 4: compiled and
                                                 # Python loops (10-seed solve rate), SBX and SB3
    python benchmarks/trainer.py --seeds 3       # fewer seeds for the solve rates
    python benchmarks/trainer.py --population    # 32 members (64x64, train_freq 4) vs one, compiled loop
    python benchmarks/trainer.py --quick         # seed 0: compiled loop beside SBX, (b) then (a)
    python benchmarks/trainer.py --micro         # per-call costs: tf.function vs numpy acting, train calls
    python benchmarks/trainer.py --blog          # the blog-style loop (model.predict per step) for contrast

It prints, measured in the same run: the compiled loop's gradient step in GFLOP/s beside the
core's single-thread matmul rate on the MLP's own shape (64x256 @ 256x256; see
benchmarks/profile_compiled.py), and the gradient arithmetic each compiled run did over its
training wall. SBX and SB3 run from their own venvs (benchmarks/peers.py runs them):

    python3 -m venv /work/peers/sbx
    /work/peers/sbx/bin/pip install torch==2.13.0
    /work/peers/sbx/bin/pip install "sbx-rl>=0.28" "jax[cpu]" "gymnasium[classic-control]"
    python3 -m venv /work/peers/sb3
    /work/peers/sb3/bin/pip install torch==2.13.0
    /work/peers/sb3/bin/pip install "stable-baselines3>=2.9" "gymnasium[classic-control]" ale-py opencv-python-headless

Both wall and CPU time of the pinned process are printed: on a quiet core they agree; on a busy
machine CPU time leaves out what the core spent on others. Prints figures; asserts nothing.
"Solves" means a greedy evaluation mean >= 475 at some
evaluation within the budget; the final evaluation is reported too (DQN swings between evals).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

RL_ZOO_CARTPOLE = {
    "env_id": "CartPole-v1", "total_timesteps": 50_000, "learning_rate": 2.3e-3, "batch_size": 64,
    "buffer_size": 100_000, "learning_starts": 1000, "gamma": 0.99, "target_update_interval": 10,
    "train_freq": 256, "gradient_steps": 128, "exploration_fraction": 0.16,
    "exploration_final_eps": 0.04, "net_arch": [256, 256], "eval_freq": 5000, "n_eval_episodes": 10,
}
TRAIN_FREQ_4 = {**RL_ZOO_CARTPOLE, "train_freq": 4, "gradient_steps": 1}
ONE_CORE_ENV = {"TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}


def run_isolated(config: dict, core: int) -> dict:
    """One training run in a fresh interpreter pinned to `core`; returns the result summary."""
    env = {**os.environ, **ONE_CORE_ENV}
    started = time.perf_counter()
    completed = subprocess.run(
        [sys.executable, __file__, "--worker", json.dumps(config), "--core", str(core)],
        capture_output=True, text=True, env=env, check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(completed.stderr[-2000:])
    summary = json.loads(completed.stdout.strip().splitlines()[-1])
    summary["process_seconds"] = time.perf_counter() - started
    return summary


def worker(config: dict, core: int) -> None:
    os.sched_setaffinity(0, {core})
    started = time.perf_counter()
    from dqn_tf import train

    imported = time.perf_counter() - started
    if "population" in config:
        from dqn_tf import train_population

        base = {k: v for k, v in config.items() if k != "population"}
        results = train_population([{**base, "seed": s} for s in range(config["population"])])
        print(json.dumps({"wall_seconds": results[0].wall_seconds, "timings": results[0].timings,
                          "best_evals": [max(e["mean_return"] for e in r.evals) for r in results],
                          "solved_members": sum(max(e["mean_return"] for e in r.evals) >= 475 for r in results)}))
        return
    cpu_started = time.process_time()
    result = train(config)
    cpu_seconds = time.process_time() - cpu_started
    curve = [e["mean_return"] for e in result.evals]
    print(json.dumps({
        "seed": config.get("seed", 0), "wall_seconds": result.wall_seconds, "import_seconds": imported,
        "cpu_seconds": cpu_seconds,
        "steps_per_second": result.steps_per_second, "best_eval": max(curve), "final_eval": curve[-1],
        "solved": max(curve) >= 475, "timings": result.timings, "gradient_steps": result.gradient_steps,
        "loop": result.loop,
    }))


def report(name: str, runs: list[dict]) -> None:
    walls = sorted(r["wall_seconds"] for r in runs)
    cpus = sorted(r["cpu_seconds"] for r in runs)
    speeds = sorted(r["steps_per_second"] for r in runs)
    solved = sum(r["solved"] for r in runs)
    print(f"\n{name}")
    print(f"  wall for 50k steps (train() call): median {walls[len(walls) // 2]:.1f} s  [min {walls[0]:.1f}, max {walls[-1]:.1f}]; "
          f"CPU time median {cpus[len(cpus) // 2]:.1f} s")
    print(f"  env steps/s: median {speeds[len(speeds) // 2]:,.0f}")
    t = runs[0]["timings"]
    print(f"  split (seed {runs[0]['seed']}): train {t['train_seconds']:.1f} s, collect {t['collect_seconds']:.1f} s, "
          f"eval {t['eval_seconds']:.1f} s, setup {t['setup_seconds']:.1f} s (XLA build "
          f"{t.get('build_seconds', 0):.1f} s); TF import {runs[0]['import_seconds']:.1f} s")
    print(f"  solved (greedy mean >= 475 at some eval): {solved}/{len(runs)}; "
          f"final eval >= 475: {sum(r['final_eval'] >= 475 for r in runs)}/{len(runs)}")
    print(f"  best evals: {[round(r['best_eval']) for r in runs]}")


def parallel_runs(configs: list[dict], jobs: int) -> list[dict]:
    """Runs on distinct cores (`jobs` at a time), each still one core."""
    with ThreadPoolExecutor(jobs) as pool:
        return list(pool.map(lambda ic: run_isolated(ic[1], ic[0] % jobs), enumerate(configs)))


def micro() -> None:
    os.sched_setaffinity(0, {0})
    os.environ.update(ONE_CORE_ENV)
    import numpy as np
    import tensorflow as tf

    from dqn_tf.config import TrainConfig
    from dqn_tf.learner import Learner
    from dqn_tf.networks import q_values
    from dqn_tf.policy import greedy
    from dqn_tf.strategy import plan_devices

    learner = Learner([TrainConfig()], 4, 2, plan_devices("cpu"))
    obs = np.zeros((1, 4), np.float32)
    act = tf.function(lambda x: tf.argmax(q_values(learner.arch, learner.online[0], x), axis=1))
    act(obs)
    layers = learner.greedy_layers()[0]

    def per_call(fn, n=2000) -> float:
        started = time.perf_counter()
        for _ in range(n):
            fn()
        return (time.perf_counter() - started) / n * 1e6

    print(f"act, tf.function (1 env):   {per_call(lambda: act(obs)):8.1f} us/call")
    print(f"act, numpy mirror (1 env):  {per_call(lambda: greedy(layers, obs)):8.1f} us/call")
    rng = np.random.default_rng(0)
    for steps in (1, 128):
        batch = {  # [member, step, batch, ...]
            "obs": rng.normal(size=(1, steps, 64, 4)).astype(np.float32),
            "actions": rng.integers(0, 2, (1, steps, 64)).astype(np.int32),
            "rewards": np.ones((1, steps, 64), np.float32),
            "next_obs": rng.normal(size=(1, steps, 64, 4)).astype(np.float32),
            "dones": np.zeros((1, steps, 64), np.float32),
        }
        tau = np.ones(1)
        learner.train(batch, tau)
        cost = per_call(lambda batch=batch, tau=tau: learner.train(batch, tau), n=max(20, 400 // steps))
        print(f"train call, {steps:3d} gradient steps: {cost / 1000:8.2f} ms/call = {cost / steps / 1000:.3f} ms/step")


def blog_style(steps: int = 200) -> None:
    """The source articles' loop: model.predict per env step, model.fit per update."""
    os.sched_setaffinity(0, {0})
    os.environ.update(ONE_CORE_ENV)
    import gymnasium as gym
    import keras
    import numpy as np

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(256, "relu"),
                              keras.layers.Dense(256, "relu"), keras.layers.Dense(2)])
    model.compile("adam", "huber")
    env = gym.make("CartPole-v1")
    obs, _ = env.reset(seed=0)
    memory = []
    started = time.perf_counter()
    for _ in range(steps):
        action = int(np.argmax(model.predict(obs[None], verbose=0)[0]))
        next_obs, reward, terminated, truncated, _ = env.step(action)
        memory.append((obs, action, reward, next_obs, terminated))
        if len(memory) >= 64:
            idx = np.random.randint(len(memory), size=64)
            o = np.array([memory[i][0] for i in idx])
            model.fit(o, model.predict(o, verbose=0), verbose=0)
        obs = next_obs if not (terminated or truncated) else env.reset()[0]
    print(f"blog-style loop: {steps / (time.perf_counter() - started):.1f} env steps/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=10, help="seeds for the (a) and (b) solve rates")
    parser.add_argument("--jobs", type=int, default=2, help="runs at once, each pinned to its own core")
    parser.add_argument("--micro", action="store_true")
    parser.add_argument("--blog", action="store_true")
    parser.add_argument("--population", action="store_true")
    parser.add_argument("--quick", action="store_true", help="seed 0 of the compiled loop beside SBX, (b) and (a)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--core", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(json.loads(args.worker), args.core)
    if args.micro:
        return micro()
    if args.blog:
        return blog_style()
    if args.population:
        return population()
    if args.quick:
        return quick()
    print(f"{os.cpu_count()} cores; every run is a fresh process on one core with 1+1 TF threads; "
          f"load average {Path('/proc/loadavg').read_text().split()[0]} at the start")
    gradient_step_rate(RL_ZOO_CARTPOLE)
    for name, config in (("(a) rl-zoo tuned CartPole-v1 DQN (train_freq 256, gradient_steps 128)", RL_ZOO_CARTPOLE),
                         ("(b) same, train_freq 4 / gradient_steps 1", TRAIN_FREQ_4)):
        seeds = range(args.seeds)
        for loop in ("compiled", "python"):
            runs = parallel_runs([{**config, "seed": s, "loop": loop} for s in seeds], args.jobs)
            report(f"{name}, {loop} loop", runs)
            if loop == "compiled":
                print(arithmetic_share(runs))
        peers_side_by_side(config)


def gradient_step_rate(config: dict) -> None:
    """The compiled loop's gradient step (256x256 MLP, batch 64) beside the core's matmul rate on
    the MLP's own shape, both measured now in one fresh process on core 0."""
    completed = subprocess.run([sys.executable, str(Path(__file__).with_name("profile_compiled.py")), "--core", "0",
                                "--rate-of", json.dumps(config)], capture_output=True, text=True,
                               env={**os.environ, **ONE_CORE_ENV}, check=False)
    lines = [line for line in completed.stdout.splitlines() if line.startswith("RESULT ")]
    if completed.returncode != 0 or not lines:
        raise RuntimeError(completed.stderr[-2000:])
    rate = json.loads(lines[-1].removeprefix("RESULT "))
    print(f"gradient step (compiled loop, alone in an XLA loop): {rate['ms']:.3f} ms for {rate['mflop']:.1f} MFLOP = "
          f"{rate['gflops']:.1f} GFLOP/s = {rate['gflops'] / rate['core_gflops']:.0%} of the core's "
          f"{rate['core_gflops']:.1f} GFLOP/s (one thread, XLA, 64x256 @ 256x256)")


def arithmetic_share(runs: list[dict], mflop: float = 34.2) -> str:
    """Gradient arithmetic a run did, over its training wall: what the loop adds to the matmuls."""
    r = runs[0]
    gflop = r["gradient_steps"] * mflop / 1e3
    return (f"  gradient arithmetic (seed {r['seed']}): {gflop:.0f} GFLOP = {gflop / r['timings']['train_seconds']:.1f} "
            f"GFLOP/s over the training wall ({r['timings']['train_seconds']:.1f} s)")


def peers_side_by_side(config: dict) -> None:
    """SBX and SB3 on the same config, seed 0, each from its own venv (see benchmarks/peers.py)."""
    import peers

    for peer in ("sbx", "sb3"):
        if not peers.available(peer):
            print(f"  {peer}: not installed (see benchmarks/peers.py for its venv)")
            continue
        run = peers.run_peer(peer, {**config, "seed": 0}, core=0)
        print(f"  {peer} {run['version']}: learn() wall {run['wall_seconds']:.1f} s, CPU time {run['cpu_seconds']:.1f} s "
              f"({run['steps_per_second']:,.0f} steps/s), best eval {run['best_eval']:.0f}")


def quick() -> None:
    """Seed 0 only: the compiled loop and SBX, one after the other on core 0, for (b) then (a);
    CPU times compare even on a busy machine."""
    import peers

    for name, config in (("(b)", TRAIN_FREQ_4), ("(a)", RL_ZOO_CARTPOLE)):
        load = Path("/proc/loadavg").read_text().split()[0]
        ours = run_isolated({**config, "seed": 0, "loop": "compiled"}, 0)
        sbx = peers.run_peer("sbx", {**config, "seed": 0}, core=0)
        print(f"{name} load {load}: ours compiled wall {ours['wall_seconds']:.1f} s CPU {ours['cpu_seconds']:.1f} s "
              f"(build {ours['timings']['build_seconds']:.1f} s, best {ours['best_eval']:.0f}); SBX {sbx['version']} "
              f"wall {sbx['wall_seconds']:.1f} s CPU {sbx['cpu_seconds']:.1f} s (best {sbx['best_eval']:.0f}); "
              f"SBX / ours: CPU {sbx['cpu_seconds'] / ours['cpu_seconds']:.2f}x, wall "
              f"{sbx['wall_seconds'] / ours['wall_seconds']:.2f}x", flush=True)


def population(members: int = 32) -> None:
    """The compiled loop's population of 32 (64x64, train_freq 4) against one member."""
    config = {**TRAIN_FREQ_4, "net_arch": [64, 64], "loop": "compiled"}
    solo = run_isolated({**config, "seed": 0}, 0)
    print(f"1 member:   wall {solo['wall_seconds']:.1f} s (XLA build {solo['timings']['build_seconds']:.1f} s), "
          f"best eval {solo['best_eval']:.0f}")
    pack = run_isolated({**config, "population": members}, 0)
    print(f"{members} members: wall {pack['wall_seconds']:.1f} s (XLA build {pack['timings']['build_seconds']:.1f} s)"
          f" = {pack['wall_seconds'] / solo['wall_seconds']:.2f}x one member; solved "
          f"{pack['solved_members']}/{members}, member 0's best eval {pack['best_evals'][0]:.0f}, "
          f"median best eval {sorted(pack['best_evals'])[members // 2]:.0f}")


if __name__ == "__main__":
    main()
