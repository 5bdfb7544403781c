"""The real trainer end to end, on tiny budgets (the learning test is the one long run)."""

import json

import pytest

from dqn_tf import ConfigError, TrainingDiverged, train
from tests import nan_env

TINY = {
    "total_timesteps": 1500, "net_arch": [32], "learning_starts": 200, "train_freq": 4,
    "gradient_steps": 2, "eval_freq": 500, "n_eval_episodes": 3, "buffer_size": 1000, "batch_size": 32,
}


def test_tiny_run_produces_plain_result_with_evals_and_episodes():
    events = []
    result = train({**TINY, "seed": 1}, on_event=events.append)
    assert result.env_steps == 1500
    assert [e["step"] for e in result.evals] == [500, 1000, 1500]
    assert result.gradient_steps == 2 * ((1500 - 200) // 4 + 1) - 2  # phases after learning_starts
    assert [e["step"] for e in events if e["event"] == "eval"] == [500, 1000, 1500]
    assert any(e["event"] == "progress" and e["steps_per_second"] > 0 for e in events)
    assert result.episodes and sum(e["length"] for e in result.episodes) <= 1500
    assert all(e["return"] == e["length"] for e in result.episodes)  # CartPole: +1 per step
    assert result.final_eval_mean == result.evals[-1]["mean_return"]
    assert result.replicas == 1 and not result.stopped_early
    assert json.loads(json.dumps(result.to_dict()))["env_steps"] == 1500


def test_same_seed_same_returns_other_seed_other_returns():
    first, second = train({**TINY, "seed": 5}), train({**TINY, "seed": 5})
    other = train({**TINY, "seed": 6})
    assert first.episodes == second.episodes and first.evals == second.evals
    assert first.episodes != other.episodes


def test_callback_stops_training_cleanly():
    result = train({**TINY, "seed": 2}, on_event=lambda e: "pruned" if e["event"] == "eval" else None)
    assert result.stopped_early and result.stop_reason == "pruned"
    assert result.env_steps == 500 and len(result.evals) == 1


def test_resume_from_checkpoint_continues_exactly(tmp_path):
    config = {**TINY, "seed": 3}
    uninterrupted = train(config)
    stopped = train(config, on_event=lambda e: e["event"] == "eval" and e["step"] == 1000, checkpoint_dir=tmp_path)
    assert stopped.env_steps == 1000
    resumed = train(config, checkpoint_dir=tmp_path)
    assert resumed.resumed_from_step == 1000 and resumed.env_steps == 1500
    assert resumed.evals == uninterrupted.evals
    assert resumed.episodes == uninterrupted.episodes
    with pytest.raises(ConfigError, match="learning_rate"):
        train({**config, "learning_rate": 0.5}, checkpoint_dir=tmp_path)


def test_dueling_double_dqn_on_a_sync_vector_env():
    result = train({**TINY, "env_id": "Acrobot-v1", "n_envs": 2, "dueling": True, "double_dqn": True,
                    "total_timesteps": 800, "eval_freq": 0, "n_eval_episodes": 1, "tau": 0.5})
    assert result.env_steps >= 800 and len(result.evals) == 1
    assert all(e["return"] <= 0 for e in result.episodes)  # Acrobot: -1 per step


def test_continuous_action_env_is_rejected_before_training():
    with pytest.raises(ConfigError, match="env_id = 'Pendulum-v1': DQN needs a Discrete action space"):
        train({**TINY, "env_id": "Pendulum-v1"})


def test_nan_rewards_stop_the_run_as_diverged():
    with pytest.raises(TrainingDiverged, match="diverged"):
        train({**TINY, "env_id": nan_env.register()})


@pytest.mark.slow
def test_cartpole_defaults_solve_within_50k_steps():
    """The package's defaults (rl-zoo's tuned CartPole-v1 DQN) reach a greedy mean >= 475."""
    result = train({"seed": 0})
    curve = [e["mean_return"] for e in result.evals]
    assert result.env_steps == 50_000
    assert max(curve) >= 475, curve
    assert max(curve) > 2 * curve[0]  # it learned, not a lucky initialisation
