"""Peer DQN baselines, SBX (JAX) and SB3 (torch), each run from its own venv on one of our configs.

Nothing in dqn_tf depends on a peer, and this module imports only the standard library: the
peer's code runs in a fresh process of the peer's own interpreter (this file, run as a script),
pinned to one core with one compute thread, and the result comes back as a dict.

Make the venvs (outside the repo; another folder with DQN_SWEEP_PEERS_DIR=/path):

    python3 -m venv /work/peers/sbx
    /work/peers/sbx/bin/pip install torch==2.13.0   # first, and exactly: the CPU wheel on disk
    /work/peers/sbx/bin/pip install "sbx-rl>=0.28" "jax[cpu]" "gymnasium[classic-control]"

    python3 -m venv /work/peers/sb3
    /work/peers/sb3/bin/pip install torch==2.13.0   # first: a plain `torch` pulls GBs of CUDA
    /work/peers/sb3/bin/pip install "stable-baselines3>=2.9" "gymnasium[classic-control]" \\
        ale-py opencv-python-headless

(SBX needs torch too: it uses SB3's replay buffer. Sizes seen: sbx 1.7 GB, sb3 1.2 GB.)

    from benchmarks.peers import available, run_peer, run_peer_atari
    if available("sbx"):
        print(run_peer("sbx", RL_ZOO_CARTPOLE, core=0))
    print(run_peer_atari("sb3", {"learning_starts": 1000}, measure_steps=2000))

    python benchmarks/peers.py --peer sb3 --total-timesteps 10000   # by hand
    python benchmarks/peers.py --atari --learning-starts 1000 --measure-steps 2000

`run_peer` gives `wall_seconds`: the `model.learn` call including the periodic and final greedy
evaluations, the same span as our `train()` less setup (ours includes evals too; its
`timings["eval_seconds"]` says how much); `eval_seconds` and `learn_seconds` (= wall less evals)
with `steps_per_second_without_eval` separate them. Evaluations follow ours: every `eval_freq`
transitions and once at the end, `n_eval_episodes` greedy episodes side by side, reset seeds drawn
as ours draws them. Configs use SB3's names (ours); a field that would change the algorithm in a
way the peer cannot follow raises ValueError, a difference the peer cannot avoid is listed under
`differences`, and fields the peers have no use for under `ignored_fields`.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import subprocess
import sys
import time
from pathlib import Path

PEERS = ("sbx", "sb3")
MODULES = {"sbx": "sbx", "sb3": "stable_baselines3"}
PEERS_DIR = Path(os.environ.get("DQN_SWEEP_PEERS_DIR", "/work/peers"))
ONE_CORE_ENV = {
    "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
    "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1",
    "JAX_PLATFORMS": "cpu", "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "2",
}
# Our TrainConfig's defaults for the fields a config may leave out (kept in step with dqn_tf/config.py).
OUR_DEFAULTS = {
    "env_id": "CartPole-v1", "total_timesteps": 50_000, "n_envs": 1, "learning_rate": 2.3e-3,
    "gamma": 0.99, "batch_size": 64, "buffer_size": 100_000, "learning_starts": 1_000, "train_freq": 256,
    "gradient_steps": 128, "target_update_interval": 10, "tau": 1.0, "exploration_fraction": 0.16,
    "exploration_initial_eps": 1.0, "exploration_final_eps": 0.04, "net_arch": [256, 256],
    "double_dqn": False, "dueling": False, "max_grad_norm": 10.0, "huber_delta": 1.0, "eval_freq": 5_000,
    "n_eval_episodes": 10, "seed": 0,
}
PASSED = ("learning_rate", "buffer_size", "learning_starts", "batch_size", "tau", "gamma", "train_freq",
          "gradient_steps", "target_update_interval", "exploration_fraction", "exploration_initial_eps",
          "exploration_final_eps", "seed")
HANDLED = {*PASSED, "env_id", "total_timesteps", "n_envs", "net_arch", "double_dqn", "dueling",
           "max_grad_norm", "huber_delta", "eval_freq", "n_eval_episodes"}
# rl-zoo's Atari DQN (buffer 100k, lr 1e-4, batch 32, train_freq 4), with the one-copy-of-each-frame buffer.
ATARI_PONG = {
    "env_id": "PongNoFrameskip-v4", "n_envs": 1, "learning_rate": 1e-4, "buffer_size": 100_000,
    "optimize_memory_usage": True, "learning_starts": 100_000, "batch_size": 32, "gamma": 0.99,
    "train_freq": 4, "gradient_steps": 1, "target_update_interval": 1000, "exploration_fraction": 0.1,
    "exploration_initial_eps": 1.0, "exploration_final_eps": 0.01, "frame_stack": 4, "seed": 0,
}


def venv_python(peer: str) -> Path:
    if peer not in PEERS:
        raise ValueError(f"peer = {peer!r}: one of {', '.join(PEERS)}")
    return PEERS_DIR / peer / "bin" / "python"


@functools.cache
def available(peer: str) -> bool:
    """The peer's venv is there and its package imports."""
    python = venv_python(peer)
    if not python.exists():
        return False
    probe = subprocess.run([str(python), "-I", "-c", f"import {MODULES[peer]}"], env=_child_env(peer),
                           capture_output=True, check=False, timeout=300)
    return probe.returncode == 0


def dqn_kwargs(peer: str, config: dict) -> tuple[dict, list[str], list[str]]:
    """(the peer's DQN keyword arguments, differences from ours, fields ignored) for one of our configs."""
    venv_python(peer)
    c = {**OUR_DEFAULTS, **config}
    refused = [f"{name} = {c[name]!r}" for name, ours in (("double_dqn", False), ("dueling", False),
                                                          ("huber_delta", 1.0)) if c[name] != ours]
    net_arch = [int(units) for units in c["net_arch"]]
    if peer == "sbx" and (len(net_arch) != 2 or net_arch[0] != net_arch[1]):
        refused.append(f"net_arch = {net_arch} (SBX's Q-network is two hidden layers of one width)")
    if refused:
        raise ValueError(f"{peer} has no equivalent of: " + "; ".join(refused))
    kwargs = {name: c[name] for name in PASSED}
    kwargs["policy_kwargs"] = {"net_arch": net_arch}
    differences = []
    if peer == "sb3":
        kwargs["max_grad_norm"] = float(c["max_grad_norm"])
    else:
        differences.append(f"no gradient clipping (ours and SB3 clip the norm at {c['max_grad_norm']})")
    if c["n_envs"] > 1 and c["target_update_interval"] % c["n_envs"]:
        differences.append("target_update_interval counted in vector steps (interval // n_envs), "
                           "ours in transitions")
    ignored = sorted(set(config) - HANDLED)
    return kwargs, differences, ignored


def run_peer(peer: str, config: dict, core: int = 0, timeout: float | None = None) -> dict:
    """Train the peer's DQN on `config` in a fresh process on `core`; see the module docstring."""
    kwargs, differences, ignored = dqn_kwargs(peer, config)
    c = {**OUR_DEFAULTS, **config}
    job = {"kwargs": kwargs, "env_id": c["env_id"], "n_envs": c["n_envs"], "seed": c["seed"],
           "total_timesteps": c["total_timesteps"], "eval_freq": c["eval_freq"],
           "n_eval_episodes": c["n_eval_episodes"]}
    result = _launch(peer, "cartpole", job, core, timeout)
    return {**result, "differences": differences, "ignored_fields": ignored}


def run_peer_atari(peer: str = "sb3", config: dict | None = None, core: int = 0,
                   measure_steps: int = 20_000, timeout: float | None = None) -> dict:
    """SB3 DQN (CnnPolicy, AtariWrapper, VecFrameStack) steps/s over `measure_steps` after learning_starts.

    `steps_per_second` is env transitions per second of wall from the step that crosses
    learning_starts to the one that crosses learning_starts + measure_steps (collection and
    training); `collect_steps_per_second` is the pre-training phase (random acting, no updates).
    `config` overrides ATARI_PONG; `env_kwargs` passes to gymnasium.make (an ALE/*-v5 id gets
    frameskip=1 unless given, since AtariWrapper skips 4 itself).
    """
    if peer != "sb3":
        raise ValueError(f"peer = {peer!r}: the Atari mode runs sb3 only")
    c = {**ATARI_PONG, **(config or {})}
    passed = [name for name in PASSED if name in c] + ["optimize_memory_usage"]
    kwargs = {name: c[name] for name in passed}
    if kwargs["optimize_memory_usage"]:
        kwargs["replay_buffer_kwargs"] = {"handle_timeout_termination": False}  # SB3 refuses both
    env_kwargs = dict(c.get("env_kwargs") or {})
    if c["env_id"].startswith("ALE/"):
        env_kwargs.setdefault("frameskip", 1)
    job = {"kwargs": kwargs, "env_id": c["env_id"], "n_envs": c["n_envs"], "seed": c["seed"],
           "frame_stack": c["frame_stack"], "env_kwargs": env_kwargs, "measure_steps": int(measure_steps)}
    result = _launch(peer, "atari", job, core, timeout)
    known = {*PASSED, "env_id", "n_envs", "optimize_memory_usage", "frame_stack", "env_kwargs"}
    return {**result, "ignored_fields": sorted(set(config or {}) - known)}


def _child_env(peer: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON") and k != "VIRTUAL_ENV"}
    return {**env, **ONE_CORE_ENV, "VIRTUAL_ENV": str(PEERS_DIR / peer)}


def _launch(peer: str, mode: str, job: dict, core: int, timeout: float | None) -> dict:
    if not available(peer):
        raise RuntimeError(f"{peer} is not installed at {PEERS_DIR / peer}: see benchmarks/peers.py's docstring")
    started = time.perf_counter()
    payload = json.dumps({"peer": peer, "mode": mode, "core": core, **job})
    completed = subprocess.run([str(venv_python(peer)), "-I", str(Path(__file__).resolve()), "--child", payload],
                               capture_output=True, text=True, env=_child_env(peer), check=False, timeout=timeout)
    lines = [line for line in completed.stdout.splitlines() if line.startswith("PEER_RESULT ")]
    if completed.returncode != 0 or not lines:
        raise RuntimeError(f"{peer} run failed (exit {completed.returncode}): {completed.stderr[-3000:]}")
    result = json.loads(lines[-1].removeprefix("PEER_RESULT "))
    result["process_seconds"] = time.perf_counter() - started
    return result


# -- the child: runs in the peer's venv -----------------------------------------------------------

def _child(job: dict) -> dict:
    os.sched_setaffinity(0, {job["core"]})
    started = time.perf_counter()
    import gymnasium as gym
    import numpy as np
    import stable_baselines3
    import torch
    from stable_baselines3.common.callbacks import BaseCallback

    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)
    peer = job["peer"]
    if peer == "sbx":
        import jax
        import sbx
        from sbx import DQN
        versions = {"sbx": sbx.__version__, "jax": jax.__version__}
    else:
        from stable_baselines3 import DQN
        versions = {}
    versions.update({"stable_baselines3": stable_baselines3.__version__, "torch": torch.__version__,
                     "gymnasium": gym.__version__})
    info = {"peer": peer, "version": versions.get(peer, versions["stable_baselines3"]), "versions": versions,
            "affinity": sorted(os.sched_getaffinity(0)), "torch_threads": torch.get_num_threads()}
    if job["mode"] == "atari":
        return {**info, **_child_atari(job, DQN, BaseCallback, started)}
    from stable_baselines3.common.env_util import make_vec_env

    env = make_vec_env(job["env_id"], n_envs=job["n_envs"], seed=job["seed"])
    info["import_seconds"] = time.perf_counter() - started
    built = time.perf_counter()
    model = DQN("MlpPolicy", env, verbose=0, device="cpu", **job["kwargs"])
    info["setup_seconds"] = time.perf_counter() - built
    evaluator = _Evaluator(gym, np, job["env_id"], job["n_eval_episodes"], job["seed"])
    total, eval_freq = job["total_timesteps"], job["eval_freq"]

    class Evaluations(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.boundary = 0
            self.seconds = 0.0
            self.curve: list[tuple[int, float]] = []

        def _evaluate(self, label: int) -> None:
            began = time.perf_counter()
            self.curve.append((label, evaluator.run(model)))
            self.seconds += time.perf_counter() - began

        def _on_step(self) -> bool:
            steps = self.num_timesteps
            if eval_freq and steps < total and steps // eval_freq > self.boundary:
                self.boundary = steps // eval_freq
                self._evaluate(self.boundary * eval_freq)
            return True

        def _on_training_end(self) -> None:
            self._evaluate(total)

    evaluations = Evaluations()
    began, cpu_began = time.perf_counter(), time.process_time()
    model.learn(total_timesteps=total, callback=evaluations)
    wall, cpu = time.perf_counter() - began, time.process_time() - cpu_began
    evaluator.close()
    curve = [mean for _, mean in evaluations.curve]
    learn_seconds = wall - evaluations.seconds
    return {
        **info, "wall_seconds": wall, "eval_seconds": evaluations.seconds, "learn_seconds": learn_seconds,
        "cpu_seconds": cpu,
        "env_steps": int(model.num_timesteps), "gradient_steps": int(model._n_updates),
        "steps_per_second": model.num_timesteps / wall,
        "steps_per_second_without_eval": model.num_timesteps / max(learn_seconds, 1e-9),
        "eval_steps": [step for step, _ in evaluations.curve], "eval_curve": curve,
        "best_eval": max(curve), "final_eval": curve[-1],
    }


class _Evaluator:
    """Ours (dqn_tf/evaluate.py): one greedy episode per sub-env, reset seed from (seed, count)."""

    def __init__(self, gym, np, env_id: str, n_episodes: int, seed: int):
        mode = "vector_entry_point" if gym.spec(env_id).vector_entry_point else "sync"
        self.env = gym.make_vec(env_id, num_envs=n_episodes, vectorization_mode=mode)
        self.np, self.seed, self.count = np, seed, 0

    def run(self, model) -> float:
        np = self.np
        seed = int(np.random.SeedSequence([self.seed, self.count]).generate_state(1)[0] >> 1)
        self.count += 1
        obs, _ = self.env.reset(seed=seed)
        returns = np.zeros(self.env.num_envs)
        running = np.ones(self.env.num_envs, dtype=bool)
        while running.any():
            actions, _ = model.predict(obs.astype(np.float32), deterministic=True)
            obs, rewards, terminated, truncated, _ = self.env.step(np.asarray(actions))
            returns += np.where(running, rewards, 0.0)
            running &= ~(terminated | truncated)
        return float(returns.mean())

    def close(self) -> None:
        self.env.close()


def _child_atari(job: dict, DQN, BaseCallback, started: float) -> dict:
    import ale_py
    import cv2
    import gymnasium as gym
    from stable_baselines3.common.env_util import make_atari_env
    from stable_baselines3.common.vec_env import VecFrameStack

    cv2.setNumThreads(1)
    gym.register_envs(ale_py)
    env = VecFrameStack(make_atari_env(job["env_id"], n_envs=job["n_envs"], seed=job["seed"],
                                       env_kwargs=job["env_kwargs"]), n_stack=job["frame_stack"])
    import_seconds = time.perf_counter() - started
    built = time.perf_counter()
    model = DQN("CnnPolicy", env, verbose=0, device="cpu", **job["kwargs"])
    setup_seconds = time.perf_counter() - built
    start_at = job["kwargs"]["learning_starts"]
    stop_at = start_at + job["measure_steps"]
    marks: dict[str, tuple[float, int]] = {}

    class Meter(BaseCallback):
        def _on_training_start(self) -> None:
            marks["begin"] = (time.perf_counter(), self.model.num_timesteps)

        def _on_step(self) -> bool:
            steps = self.num_timesteps
            if "start" not in marks and steps >= start_at:
                marks["start"] = (time.perf_counter(), steps)
                marks["start_cpu"] = (time.process_time(), steps)
            if steps >= stop_at:
                marks["stop"] = (time.perf_counter(), steps)
                marks["stop_cpu"] = (time.process_time(), steps)
                return False
            return True

    margin = job["n_envs"] * max(job["kwargs"].get("train_freq", 4), 1)
    model.learn(total_timesteps=stop_at + margin, callback=Meter())
    (t0, s0), (t1, s1), (t2, s2) = marks["begin"], marks["start"], marks["stop"]
    buffer = model.replay_buffer
    return {
        "env_id": job["env_id"], "n_envs": job["n_envs"], "learning_starts": start_at,
        "import_seconds": import_seconds, "setup_seconds": setup_seconds,
        "measured_steps": s2 - s1, "measured_seconds": t2 - t1,
        "measured_cpu_seconds": marks["stop_cpu"][0] - marks["start_cpu"][0], "steps_per_second": (s2 - s1) / (t2 - t1),
        "collect_steps_per_second": (s1 - s0) / max(t1 - t0, 1e-9),
        "gradient_steps": int(model._n_updates), "observation_shape": list(env.observation_space.shape),
        "replay_observation_bytes": int(buffer.observations.nbytes
                                        + (0 if buffer.optimize_memory_usage else buffer.next_observations.nbytes)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--peer", choices=[*PEERS, "all"], default="all")
    parser.add_argument("--train-freq-4", action="store_true", help="(b): train_freq 4, gradient_steps 1")
    parser.add_argument("--total-timesteps", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--core", type=int, default=0)
    parser.add_argument("--atari", action="store_true", help="SB3's Atari steps/s after learning_starts")
    parser.add_argument("--learning-starts", type=int, default=ATARI_PONG["learning_starts"])
    parser.add_argument("--measure-steps", type=int, default=20_000)
    args = parser.parse_args()
    if args.atari:
        result = run_peer_atari("sb3", {"learning_starts": args.learning_starts, "seed": args.seed},
                                core=args.core, measure_steps=args.measure_steps)
        print(json.dumps(result, indent=1))
        return
    config = {**OUR_DEFAULTS, "total_timesteps": args.total_timesteps, "seed": args.seed}
    if args.train_freq_4:
        config.update(train_freq=4, gradient_steps=1)
    for peer in PEERS if args.peer == "all" else (args.peer,):
        if not available(peer):
            print(f"{peer}: not installed at {PEERS_DIR / peer} (see this file's docstring)")
            continue
        r = run_peer(peer, config, core=args.core)
        print(f"{peer} {r['version']}: learn {r['wall_seconds']:.1f} s ({r['eval_seconds']:.1f} s of it evals), "
              f"{r['steps_per_second']:,.0f} steps/s ({r['steps_per_second_without_eval']:,.0f} without evals), "
              f"CPU {r['cpu_seconds']:.1f} s, import {r['import_seconds']:.1f} s; evals {[round(v) for v in r['eval_curve']]}; "
              f"differences: {r['differences'] or 'none'}")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        print("PEER_RESULT " + json.dumps(_child(json.loads(sys.argv[2]))), flush=True)
    else:
        main()
