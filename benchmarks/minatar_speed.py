"""MinAtar speed: env steps/s of random play, ours in the graph beside gymnax (JAX), and training
env steps/s of both loops on the study's config (train_freq 4, 1 gradient step).

    python benchmarks/minatar_speed.py                       # Breakout: stepping at n_envs 8 and 64, training
    python benchmarks/minatar_speed.py --parts step --games Breakout Freeway
    python benchmarks/minatar_speed.py --parts train --train-steps 10000

Every figure comes from a fresh process pinned to one core (1+1 TensorFlow threads; JAX with one
Eigen thread), timed by its CPU time (equal to wall on a quiet core, and without what a busy
machine's other processes take). gymnax runs from its own venv, never imported by dqn_tf (gymnax 1.0.1 imports
`six` without declaring it):

    python3 -m venv /work/peers/gymnax
    /work/peers/gymnax/bin/pip install gymnax jax six

(another folder: DQN_SWEEP_PEERS_DIR=/path). Stepping: one compiled program (our XLA while loop,
gymnax's jitted `lax.scan` over `vmap`) steps `n_envs` games with uniformly random actions,
autoreset, and sums rewards and observations (so neither side can skip making them).
Training: `train()` from `studies/minatar-breakout.yaml`'s trainer settings, env steps/s between
the first progress event at or after learning_starts and the last one, no evaluation.
Prints figures; asserts nothing. (Not named minatar.py: run as a script, that would shadow the
`minatar` package for everything it imports.)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PEERS_DIR = Path(os.environ.get("DQN_SWEEP_PEERS_DIR", "/work/peers"))
ONE_CORE_ENV = {"TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1", "TF_CPP_MIN_LOG_LEVEL": "2",
                "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1",
                "JAX_PLATFORMS": "cpu", "CUDA_VISIBLE_DEVICES": ""}
STUDY_TRAINER = {  # studies/minatar-breakout.yaml's trainer block, learning_rate 1e-3
    "total_timesteps": 100_000, "learning_starts": 5000, "buffer_size": 100_000, "batch_size": 32,
    "train_freq": 4, "gradient_steps": 1, "target_update_interval": 1000, "learning_rate": 1e-3,
}
GYMNAX_IDS = {"Breakout": "Breakout-MinAtar", "Freeway": "Freeway-MinAtar", "Asterix": "Asterix-MinAtar",
              "SpaceInvaders": "SpaceInvaders-MinAtar", "Seaquest": "Seaquest-MinAtar"}


def isolated(job: dict, python: str = sys.executable) -> dict:
    """One measurement in a fresh interpreter (`python`) pinned to `job["core"]`; its result."""
    completed = subprocess.run([python, __file__, "--child", json.dumps(job)], capture_output=True, text=True,
                               env={**os.environ, **ONE_CORE_ENV, "PYTHONPATH": str(ROOT)}, check=False)
    lines = [line for line in completed.stdout.splitlines() if line.startswith("RESULT ")]
    if completed.returncode != 0 or not lines:
        raise RuntimeError(f"{job['part']} failed (exit {completed.returncode}): {completed.stderr[-3000:]}")
    return json.loads(lines[-1].removeprefix("RESULT "))


def ours_stepping(job: dict) -> dict:
    """Env steps/s of our in-graph game: random play, autoreset, one XLA while loop."""
    import tensorflow as tf

    from dqn_tf.counter_rng import ACT, RESET, STEP, uniform
    from dqn_tf.graph_envs import graph_env

    genv, n = graph_env(f"MinAtar/{job['game']}-v1"), job["n_envs"]
    keys = tf.constant([1], tf.uint32)

    @tf.function(jit_compile=True)
    def run(count):
        state = genv.initial_state(uniform(keys, RESET, [-1], [n, genv.reset_draws], tf.float64))

        def body(t, state, total):
            draws = uniform(keys, ACT, [t], [n])
            actions = tf.minimum(tf.cast(draws * genv.n_actions, tf.int32), genv.n_actions - 1)
            next_state, reward, terminated = genv.step(state, actions, uniform(keys, STEP, [t], [n, genv.step_draws]))
            fresh = genv.restart(next_state, uniform(keys, RESET, [t], [n, genv.reset_draws], tf.float64))
            state = tf.where(terminated[..., None], fresh, next_state)
            seen = tf.reduce_sum(tf.cast(genv.observe(state), tf.float32))
            return t + 1, state, total + tf.reduce_sum(reward) + seen

        return tf.while_loop(lambda t, s, total: t < count, body, [tf.constant(0, tf.int64), state, 0.0])[2]

    run(tf.constant(2, tf.int64)).numpy()
    started = time.process_time()
    run(tf.constant(job["steps"], tf.int64)).numpy()
    return {"env_steps_per_second": job["steps"] * n / (time.process_time() - started)}


def gymnax_stepping(job: dict) -> dict:
    """The same with gymnax: `lax.scan` of `vmap`ped steps (autoreset inside `step`), jitted."""
    import gymnax
    import jax
    import jax.numpy as jnp

    env, params = gymnax.make(GYMNAX_IDS[job["game"]])
    n, steps = job["n_envs"], job["steps"]

    def run(key):
        keys = jax.random.split(key, n)
        _, state = jax.vmap(env.reset, in_axes=(0, None))(keys, params)

        def body(carry, _):
            key, state, total = carry
            key, act_key, step_key = jax.random.split(key, 3)
            actions = jax.random.randint(act_key, (n,), 0, env.action_space(params).n)
            obs, state, reward, *_ = jax.vmap(env.step, in_axes=(0, 0, 0, None))(
                jax.random.split(step_key, n), state, actions, params)
            return (key, state, total + reward.sum() + obs.sum()), None

        (_, _, total), _ = jax.lax.scan(body, (key, state, jnp.float32(0)), None, length=steps)
        return total

    compiled = jax.jit(run)
    compiled(jax.random.PRNGKey(0)).block_until_ready()  # compiles
    started = time.process_time()
    compiled(jax.random.PRNGKey(1)).block_until_ready()
    return {"env_steps_per_second": steps * n / (time.process_time() - started),
            "version": getattr(gymnax, "__version__", "1.0.1")}


def training(job: dict) -> dict:
    """Our train() on the study's settings: env steps/s after learning_starts, no evaluation."""
    from dqn_tf import train

    marks: list[tuple[int, float]] = []

    def on_event(event: dict) -> None:
        if event["event"] == "progress":
            marks.append((event["step"], time.process_time()))

    config = {**STUDY_TRAINER, "env_id": f"MinAtar/{job['game']}-v1", "loop": job["loop"], "eval_freq": 0,
              "n_eval_episodes": 1, "total_timesteps": STUDY_TRAINER["learning_starts"] + job["steps"]}
    result = train(config, on_event=on_event)
    (s0, t0), (s1, t1) = next(m for m in marks if m[0] >= config["learning_starts"]), marks[-1]
    return {"env_steps_per_second": (s1 - s0) / (t1 - t0), "wall_seconds": result.wall_seconds,
            "build_seconds": result.timings.get("build_seconds", 0.0)}


def child(job: dict) -> dict:
    os.sched_setaffinity(0, {job["core"]})
    return {"ours": ours_stepping, "gymnax": gymnax_stepping, "train": training}[job["part"]](job)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", nargs="+", choices=["step", "train"], default=["step", "train"])
    parser.add_argument("--games", nargs="+", default=["Breakout"], choices=list(GYMNAX_IDS))
    parser.add_argument("--n-envs", nargs="+", type=int, default=[8, 64])
    parser.add_argument("--step-env-steps", type=int, default=2_000_000, help="env steps per stepping figure")
    parser.add_argument("--train-steps", type=int, default=20_000, help="env steps measured after learning_starts")
    parser.add_argument("--core", type=int, default=0)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print("RESULT " + json.dumps(child(json.loads(args.child))), flush=True)
        return
    load = Path("/proc/loadavg").read_text().split()[0]
    print(f"every figure: a fresh process on core {args.core}; load average {load} at the start")
    gymnax_python = PEERS_DIR / "gymnax" / "bin" / "python"
    for game in args.games:
        if "step" in args.parts:
            for n in args.n_envs:
                job = {"game": game, "n_envs": n, "steps": max(args.step_env_steps // n, 100), "core": args.core}
                ours = isolated({**job, "part": "ours"})["env_steps_per_second"]
                line = f"step   {game:13s} n_envs {n:3d}  ours in-graph {ours:12,.0f} env steps/s"
                if gymnax_python.exists():
                    theirs = isolated({**job, "part": "gymnax"}, str(gymnax_python))
                    line += (f"   gymnax {theirs['version']} {theirs['env_steps_per_second']:12,.0f}"
                             f"   ours / gymnax {ours / theirs['env_steps_per_second']:.2f}")
                else:
                    line += f"   gymnax: no venv at {gymnax_python} (see the docstring)"
                print(line, flush=True)
        if "train" in args.parts:
            for loop in ("compiled", "python"):
                r = isolated({"part": "train", "game": game, "loop": loop, "steps": args.train_steps,
                              "core": args.core})
                print(f"train  {game:13s} {loop:8s} loop  {r['env_steps_per_second']:8,.0f} env steps/s "
                      f"(train_freq 4, 1 gradient step, batch 32; XLA build {r['build_seconds']:.1f} s)", flush=True)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))  # dqn_tf from this checkout
    main()
