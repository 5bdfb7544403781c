"""Pixel games end to end: DQN learns MinAtar Breakout, and short MinAtar and Pong runs from the
CLI write their result.json."""

import json
import subprocess
import sys

import numpy as np
import pytest

from dqn_tf import train
from dqn_tf.envs import make_vector_env

CLI = [sys.executable, "-m", "sweeps.cli"]


def random_policy_return(env_id: str, episodes: int, seed: int) -> float:
    """Mean true score of uniformly random play over whole games."""
    env = make_vector_env(env_id, episodes, training=False)
    env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    returns, running = np.zeros(episodes), np.ones(episodes, dtype=bool)
    while running.any():
        _, rewards, terminated, truncated, _ = env.step(rng.integers(0, env.single_action_space.n, size=episodes))
        returns += np.where(running, rewards, 0.0)
        running &= ~(terminated | truncated)
    return float(returns.mean())


# 20k steps of the MinAtar paper's setup (its small CNN, replay, batch 32, target every 1000; Adam
# at a larger step size and a gradient step every 4 env steps to fit CI).
BREAKOUT_20K = {
    "env_id": "MinAtar/Breakout-v1", "total_timesteps": 20_000, "learning_starts": 1000, "buffer_size": 20_000,
    "batch_size": 32, "train_freq": 4, "gradient_steps": 1, "target_update_interval": 1000,
    "learning_rate": 1e-3, "exploration_fraction": 0.2, "exploration_final_eps": 0.05,
    "eval_freq": 10_000, "n_eval_episodes": 20, "seed": 0,
}


@pytest.mark.slow
@pytest.mark.parametrize("loop", ["python", "compiled"])
def test_dqn_learns_minatar_breakout_far_above_random_play(loop):
    """The greedy policy after 20k steps scores several times what random play does (~0.4
    bricks; staying put ~0.6), on the Python loop (minatar stepped from Python, the reference)
    and on the compiled loop (the game in the graph)."""
    random_score = random_policy_return("MinAtar/Breakout-v1", 100, seed=1)
    result = train({**BREAKOUT_20K, "loop": loop})
    curve = [e["mean_return"] for e in result.evals]
    assert random_score < 1.0 and result.loop == loop
    assert curve[-1] >= 2.5 and curve[-1] >= 5 * random_score, (curve, random_score)
    assert curve[-1] > curve[0] or curve[0] >= 5 * random_score  # improved on its first evaluation
    assert result.config["net_arch"] == "auto"


@pytest.mark.parametrize("env_id, extra", [
    ("MinAtar/Breakout-v1", ["--set", "total_timesteps=600", "--set", "learning_starts=300", "--set", "eval_freq=300"]),
    ("PongNoFrameskip-v4", ["--set", "total_timesteps=200", "--set", "learning_starts=150"]),
], ids=["minatar", "pong"])
def test_cli_trains_a_pixel_game_and_writes_result_json(tmp_path, env_id, extra):
    completed = subprocess.run(
        CLI + ["train", "--env", env_id, *extra, "--set", "buffer_size=1000", "--set", "batch_size=32",
               "--set", "train_freq=4", "--set", "gradient_steps=1", "--set", "n_eval_episodes=1",
               "--output", str(tmp_path / "out")],
        check=False, capture_output=True, text=True, timeout=600,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    result = json.loads((tmp_path / "out" / "result.json").read_text())
    total = result["config"]["total_timesteps"]
    assert result["config"]["env_id"] == env_id and result["env_steps"] == total and result["gradient_steps"] > 0
    assert result["evals"][-1]["step"] == total and result["final_eval_mean"] is not None
    if env_id.startswith("Pong"):  # one whole game, its true score: someone reached 21
        score = result["final_eval_mean"]
        assert score == int(score) and 1 <= abs(score) <= 21
