"""`dqn-sweep train`: a result file and a summary, and one-line errors for bad input."""

import json

import yaml

from tests.helpers import dqn_sweep


def test_train_writes_result_json_and_summary(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"net_arch": [16], "learning_starts": 100, "n_eval_episodes": 2}))
    completed = dqn_sweep("train", "--env", "CartPole-v1", "--config", str(config), "--set", "total_timesteps=600",
                          "--set", "learning_rate=1e-3", "--set", "train_freq=4", "--set", "gradient_steps=1",
                          "--set", "eval_freq=300", "--output", str(tmp_path / "out"), timeout=180, check=True)
    result = json.loads((tmp_path / "out" / "result.json").read_text())
    for key in ("final_eval_mean", "env_steps", "wall_seconds", "steps_per_second", "replicas"):
        assert key in result
    assert result["env_steps"] == 600 and result["config"]["learning_rate"] == 1e-3
    assert result["config"]["net_arch"] == [16]
    assert "final eval return" in completed.stdout
    assert "eval" in completed.stderr  # plain progress lines when not on a terminal


def test_bad_input_is_one_line_error_without_traceback(tmp_path):
    for args, fragment in [
        (["--set", "gamma=7"], "gamma = 7"),
        (["--set", "learnig_rate=1"], "did you mean 'learning_rate'"),
        (["--set", "oops"], "expected KEY=VALUE"),
        (["--env", "Pendulum-v1", "--set", "total_timesteps=10"], "Discrete action space"),
        (["--config", str(tmp_path / "missing.yaml")], "missing.yaml"),
    ]:
        completed = dqn_sweep("train", *args, timeout=120)
        assert completed.returncode == 2, (args, completed.stderr)
        assert fragment in completed.stderr, (args, completed.stderr)
        assert "Traceback" not in completed.stderr
        assert completed.stderr.strip().count("\n") == 0, completed.stderr
