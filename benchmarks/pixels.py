"""Pixel DQN speed on Atari Pong: env collection, CNN train steps, the whole loop against SB3.

    python benchmarks/pixels.py              # the figures (several minutes)
    python benchmarks/pixels.py --smoke      # tiny settings: checks that every part runs
    python benchmarks/pixels.py --parts collect train

Every figure comes from a fresh process pinned to one core, with 1+1 TensorFlow threads:
- collect: transitions/s of random play with the standard DQN preprocessing (84x84 grayscale,
  frame skip 4 with max-pooling, 4 stacked frames, no-op reset), n_envs 1 and 8: our Collector
  (ale-py's C++ vector env underneath, plus channels-last, training relabels and episode
  bookkeeping), ale-py's `AtariVectorEnv` alone, and gymnasium's `AtariPreprocessing` +
  `FrameStackObservation` in a same-step `SyncVectorEnv` (needs opencv: skipped without it).
- train: gradient steps/s of the CNN learner on uint8 batches, batch 32 and 256, 1 and 2
  replicas (2 = MirroredStrategy over 2 logical CPU devices, which share the one core).
- loop: our `train()` against SB3's DQN (`benchmarks/peers.py`, its own venv) on rl-zoo's Atari
  config, env steps/s over the first `--measure-steps` steps after `learning_starts`.
- replay: bytes per transition of Atari replay, obs and next obs stored whole vs every frame once.
Prints figures; asserts nothing.
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
ENV_ID = "PongNoFrameskip-v4"
ONE_CORE_ENV = {"TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
COLLECTORS = ("ours", "ale-py", "gymnasium")
PARTS = ["collect", "train", "loop", "replay"]


def isolated(job: dict, core: int = 0) -> dict:
    """Runs one measurement in a fresh interpreter pinned to `core`; its result dict."""
    completed = subprocess.run([sys.executable, __file__, "--child", json.dumps({**job, "core": core})],
                               capture_output=True, text=True, env={**os.environ, **ONE_CORE_ENV}, check=False)
    lines = [line for line in completed.stdout.splitlines() if line.startswith("RESULT ")]
    if completed.returncode != 0 or not lines:
        raise RuntimeError(f"{job['part']} failed (exit {completed.returncode}): {completed.stderr[-3000:]}")
    return json.loads(lines[-1].removeprefix("RESULT "))


def child(job: dict) -> dict:
    os.sched_setaffinity(0, {job["core"]})
    return {"collect": collect, "train": train_steps, "loop": our_loop}[job["part"]](job)


# -- collection ---------------------------------------------------------------------------------

def collect(job: dict) -> dict:
    """Transitions/s of random play over `steps` vector steps (after a short warm-up)."""
    import numpy as np

    kind, n_envs, steps = job["kind"], job["n_envs"], job["steps"]
    rng = np.random.default_rng(0)
    if kind == "ours":
        from dqn_tf.envs import Collector

        collector = Collector(job["env_id"], n_envs, [0])
        n_actions = collector.envs[0].single_action_space.n

        def step(t: int) -> None:
            collector.step(rng.integers(0, n_actions, size=(1, n_envs)), t)
    else:
        env = gymnasium_vector_env(job["env_id"], n_envs) if kind == "gymnasium" else ale_vector_env(job["env_id"], n_envs)
        if env is None:
            return {"skipped": "gymnasium's AtariPreprocessing needs opencv: pip install opencv-python-headless"}
        env.reset(seed=0)
        n_actions = env.single_action_space.n

        def step(t: int) -> None:
            env.step(rng.integers(0, n_actions, size=n_envs))
    for t in range(20):
        step(t)
    started = time.perf_counter()
    for t in range(steps):
        step(t)
    return {"transitions_per_second": steps * n_envs / (time.perf_counter() - started)}


def ale_vector_env(env_id: str, n_envs: int):
    """ale-py's C++ vector env with the same preprocessing and threads as ours, nothing around it."""
    import gymnasium as gym
    from ale_py.vector_env import AtariVectorEnv

    from dqn_tf.pixel_envs import usable_cores

    kwargs = gym.spec(env_id).kwargs
    return AtariVectorEnv(kwargs["game"], n_envs, num_threads=min(n_envs, usable_cores()),
                          repeat_action_probability=kwargs.get("repeat_action_probability", 0.0),
                          autoreset_mode="SameStep", reward_clipping=False, episodic_life=False)


def gymnasium_vector_env(env_id: str, n_envs: int):
    """gymnasium's wrappers (what SB3's AtariWrapper does, less FIRE on reset), one env each."""
    import ale_py
    import gymnasium as gym

    gym.register_envs(ale_py)
    try:
        import cv2  # noqa: F401  AtariPreprocessing resizes with it
    except ImportError:
        return None

    def make() -> gym.Env:
        env = gym.make(env_id, frameskip=1)
        env = gym.wrappers.AtariPreprocessing(env, noop_max=30, frame_skip=4, screen_size=84, grayscale_obs=True)
        return gym.wrappers.FrameStackObservation(env, 4)

    return gym.vector.SyncVectorEnv([make] * n_envs, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)


# -- CNN train steps ----------------------------------------------------------------------------

def train_steps(job: dict) -> dict:
    """Gradient steps/s of one member's CNN learner, `steps` per train call (as a training phase
    of `gradient_steps` runs them), on uniformly random uint8 batches."""
    import numpy as np

    from dqn_tf.config import TrainConfig
    from dqn_tf.learner import Learner
    from dqn_tf.replay import FIELDS
    from dqn_tf.strategy import plan_devices

    batch, replicas, steps = job["batch_size"], job["replicas"], job["steps"]
    config = TrainConfig(env_id=job["env_id"], batch_size=batch, devices="cpu" if replicas == 1 else f"cpu:{replicas}")
    obs, n_actions = atari_obs_spec(), 6
    obs_shape = obs.shape
    learner = Learner([config], obs, n_actions, plan_devices(config.devices))
    rng = np.random.default_rng(0)
    shape = (1, steps, batch)
    values = {
        "obs": rng.integers(0, 256, size=(*shape, *obs_shape), dtype=np.uint8),
        "actions": rng.integers(0, n_actions, size=shape).astype(np.int32),
        "rewards": rng.choice([-1.0, 0.0, 1.0], size=shape).astype(np.float32),
        "next_obs": rng.integers(0, 256, size=(*shape, *obs_shape), dtype=np.uint8),
        "dones": (rng.random(shape) < 0.01).astype(np.float32),
    }
    data = {name: values[name] for name in FIELDS}
    tau = np.ones(1)
    learner.train(data, tau)  # traces and compiles
    calls = job["calls"]
    started = time.perf_counter()
    for _ in range(calls):
        learner.train(data, tau)
    return {"gradient_steps_per_second": calls * steps / (time.perf_counter() - started)}


def atari_obs_spec():
    """What the trainer makes of the Atari envs' observations: uint8 84x84, 4 stacked frames."""
    from dqn_tf.observations import ObsSpec

    return ObsSpec((84, 84, 4), "uint8", 1 / 255, frame_stack=4)


def replay_bytes(buffer_size: int) -> None:
    """Bytes per transition of a full Atari buffer: obs and next obs whole, then every frame once."""
    from dqn_tf import host_memory

    obs = atari_obs_spec()
    whole = 2 * obs.nbytes + host_memory.ROW_BYTES
    once = host_memory.replay_bytes(buffer_size, obs) / buffer_size
    print(f"replay   Atari, buffer {buffer_size:,}: {whole:,} bytes/transition with obs and next obs stored "
          f"whole, {once:,.0f} with every frame once ({whole / once:.1f}x less; "
          f"{buffer_size * once / 2**30:.2f} GiB for the buffer)")


# -- the whole loop against SB3 -------------------------------------------------------------------

def our_loop(job: dict) -> dict:
    """Our train() on the peer's config: env steps/s from the first progress event at or after
    learning_starts to the last one (before the final evaluation)."""
    from dqn_tf import train

    marks: list[tuple[int, float]] = []

    def on_event(event: dict) -> None:
        if event["event"] == "progress" and event["member"] == 0:
            marks.append((event["step"], time.perf_counter()))

    result = train(job["config"], on_event=on_event)
    (s0, t0), (s1, t1) = next(m for m in marks if m[0] >= job["config"]["learning_starts"]), marks[-1]
    return {"steps_per_second": (s1 - s0) / (t1 - t0), "measured_steps": s1 - s0,
            "gradient_steps": result.gradient_steps, "timings": result.timings}


def loop_config(peer_config: dict, learning_starts: int, measure_steps: int) -> dict:
    """The peer's Atari config in our fields; evaluation only once, at the end, on 1 episode."""
    from dqn_tf.config import field_names

    ours = {name: value for name, value in peer_config.items() if name in field_names()}
    return {**ours, "learning_starts": learning_starts, "total_timesteps": learning_starts + measure_steps,
            "eval_freq": 0, "n_eval_episodes": 1, "devices": "cpu"}


def compare_with_sb3(learning_starts: int, measure_steps: int) -> None:
    try:
        from benchmarks import peers
    except ImportError:
        print("loop: benchmarks/peers.py is not there; SB3 comparison skipped")
        return
    config = loop_config(peers.ATARI_PONG, learning_starts, measure_steps)
    ours = isolated({"part": "loop", "config": config}, core=0)
    print(f"loop ({config['env_id']}, rl-zoo Atari DQN, {measure_steps} steps after learning_starts "
          f"{learning_starts}): ours {ours['steps_per_second']:,.0f} env steps/s")
    if not peers.available("sb3"):
        print(f"  SB3: not installed at {peers.PEERS_DIR / 'sb3'} (see benchmarks/peers.py); skipped")
        return
    sb3 = peers.run_peer_atari("sb3", {"learning_starts": learning_starts}, core=0, measure_steps=measure_steps)
    print(f"  SB3 {sb3.get('version', '')}: {sb3['steps_per_second']:,.0f} env steps/s "
          f"-> ours / SB3 = {ours['steps_per_second'] / sb3['steps_per_second']:.2f}x; SB3's replay "
          f"(optimize_memory_usage) holds {sb3['replay_observation_bytes'] / config['buffer_size']:,.0f} "
          "bytes of observations per transition")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=PARTS)
    parser.add_argument("--smoke", action="store_true", help="tiny settings: checks that every part runs")
    parser.add_argument("--env", default=ENV_ID)
    parser.add_argument("--collect-steps", type=int, default=2000, help="vector steps per collection figure")
    parser.add_argument("--train-calls", type=int, default=10, help="train calls of 16 gradient steps per figure")
    parser.add_argument("--learning-starts", type=int, default=100_000)
    parser.add_argument("--measure-steps", type=int, default=20_000)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print("RESULT " + json.dumps(child(json.loads(args.child))), flush=True)
        return
    if args.smoke:
        args.collect_steps, args.train_calls, args.learning_starts, args.measure_steps = 50, 1, 500, 500
    print(f"{args.env}; every figure: a fresh process on one core, 1+1 TF threads")
    if "collect" in args.parts:
        for n_envs in (1, 8):
            for kind in COLLECTORS:
                r = isolated({"part": "collect", "kind": kind, "env_id": args.env, "n_envs": n_envs,
                              "steps": max(args.collect_steps // n_envs, 10)})
                shown = r.get("skipped") or f"{r['transitions_per_second']:8,.0f} transitions/s"
                print(f"collect  n_envs {n_envs}  {kind:10s} {shown}")
    if "train" in args.parts:
        for batch in (32, 256):
            for replicas in (1, 2):
                r = isolated({"part": "train", "env_id": args.env, "batch_size": batch, "replicas": replicas,
                              "steps": 16, "calls": args.train_calls})
                print(f"train    batch {batch:3d}  replicas {replicas}  {r['gradient_steps_per_second']:8,.1f} gradient steps/s")
    if "loop" in args.parts:
        compare_with_sb3(args.learning_starts, args.measure_steps)
    if "replay" in args.parts:
        replay_bytes(100_000)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))  # dqn_tf and benchmarks.peers from this checkout
    main()
