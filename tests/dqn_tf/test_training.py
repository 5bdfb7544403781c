"""The real trainer end to end, on tiny budgets (the learning test is the one long run)."""

import json
import pickle

import numpy as np
import pytest

from dqn_tf import ConfigError, TrainingDiverged, train, train_population
from dqn_tf.envs import make_vector_env
from tests.fakes import nan_env

TINY = {
    "total_timesteps": 1500, "net_arch": [32], "learning_starts": 200, "train_freq": 4,
    "gradient_steps": 2, "eval_freq": 500, "n_eval_episodes": 3, "buffer_size": 1000, "batch_size": 32,
}


@pytest.mark.parametrize("loop", ["python", "compiled"])
def test_tiny_run_produces_plain_result_with_evals_and_episodes(loop):
    events = []
    result = train({**TINY, "seed": 1, "loop": loop}, on_event=events.append)
    assert result.loop == loop
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


def test_a_stop_at_the_end_of_the_budget_still_ends_with_the_final_evaluation():
    """A prune that reaches the run at its last progress event comes too late: it trained to the
    end, so it evaluates and is not stopped early."""
    result = train({**TINY, "seed": 2}, on_event=lambda e: "pruned" if e["step"] >= 1500 else None)
    assert not result.stopped_early and result.env_steps == 1500
    assert [(e["step"], e["final"]) for e in result.evals][-1] == (1500, True)


def test_callback_stops_training_cleanly():
    result = train({**TINY, "seed": 2}, on_event=lambda e: "pruned" if e["event"] == "eval" else None)
    assert result.stopped_early and result.stop_reason == "pruned"
    assert result.env_steps == 500 and len(result.evals) == 1


class Crash(Exception):
    """Stands in for a worker that dies mid-run."""


def crash_after(step: int):
    def on_event(event):
        if event["event"] == "progress" and event["step"] > step:
            raise Crash
    return on_event


@pytest.mark.parametrize("config", [
    {**TINY, "seed": 3, "loop": "python"},  # CartPole's native vector env
    {**TINY, "seed": 4, "env_id": "Acrobot-v1", "n_envs": 2, "dueling": True, "double_dqn": True, "tau": 0.5,
     "total_timesteps": 1200, "eval_freq": 400, "n_eval_episodes": 1, "loop": "python"},  # a Sync vector env
    {**TINY, "seed": 3, "loop": "compiled"},
    {**TINY, "seed": 4, "env_id": "Acrobot-v1", "n_envs": 2, "dueling": True, "double_dqn": True, "tau": 0.5,
     "total_timesteps": 1200, "eval_freq": 400, "n_eval_episodes": 1, "loop": "compiled"},
    {**TINY, "seed": 5, "env_id": "MinAtar/Breakout-v1", "buffer_size": 400, "loop": "compiled"},
], ids=["cartpole", "acrobot", "cartpole-compiled", "acrobot-compiled", "minatar-compiled"])
def test_resume_after_a_crash_continues_exactly(tmp_path, config):
    uninterrupted = train(config)
    with pytest.raises(Crash):
        train(config, on_event=crash_after(2 * config["eval_freq"]), checkpoint_dir=tmp_path)
    resumed = train(config, checkpoint_dir=tmp_path)
    assert resumed.resumed_from_step == 2 * config["eval_freq"]
    assert resumed.evals == uninterrupted.evals  # no repeated step, no extra evaluation
    assert resumed.episodes == uninterrupted.episodes
    assert resumed.gradient_steps == uninterrupted.gradient_steps
    assert resumed.env_steps == uninterrupted.env_steps
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"arrays-{2 * config['eval_freq']}.npz", "state.json"]
    with pytest.raises(ConfigError, match="learning_rate"):
        train({**config, "learning_rate": 0.5}, checkpoint_dir=tmp_path)


def test_a_population_saves_once_per_evaluation_round(tmp_path):
    results = train_population([{**TINY, "seed": s} for s in (1, 2, 3)], checkpoint_dir=tmp_path)
    timings = results[0].timings
    assert timings["checkpoint_saves"] == 2  # at 500 and 1000; the end needs no checkpoint
    assert timings["checkpoint_bytes"] == (tmp_path / "arrays-1000.npz").stat().st_size + \
        (tmp_path / "state.json").stat().st_size


class Planted:
    """Unpickling this runs code: it creates the file named by `path`."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_a_planted_pickle_in_a_checkpoint_folder_is_never_executed(tmp_path):
    marker = tmp_path / "pwned"
    folder = tmp_path / "checkpoint"
    folder.mkdir()
    (folder / "state.pkl").write_bytes(pickle.dumps({"steps": 1, "payload": Planted(str(marker))}))
    result = train({**TINY, "seed": 1, "total_timesteps": 600}, checkpoint_dir=folder)
    assert result.resumed_from_step is None and result.env_steps == 600  # the pickle was ignored
    (folder / "state.json").write_text(json.dumps({"arrays": "evil.npz", "steps": 1}))
    np.savez(folder / "evil.npz", x=np.array([Planted(str(marker))], dtype=object))
    with pytest.raises(ValueError, match="allow_pickle"):
        train({**TINY, "seed": 1}, checkpoint_dir=folder)
    assert not marker.exists()


def test_evaluations_are_labelled_with_their_eval_freq_boundary():
    result = train({**TINY, "seed": 1, "n_envs": 3})
    assert [(e["step"], e["env_steps"], e["final"]) for e in result.evals] == [
        (500, 501, False), (1000, 1002, False), (1500, 1500, True)]


def test_actions_are_uniformly_random_before_learning_starts():
    """SB3 parity: even a greedy schedule (epsilon 0) acts uniformly at random during warm-up:
    the episodes are those of uniform actions drawn from the member's own RNG."""
    config = {**TINY, "seed": 2, "exploration_initial_eps": 0.0, "exploration_final_eps": 0.0, "loop": "python",
              "learning_starts": 1000, "total_timesteps": 1000, "eval_freq": 0, "n_eval_episodes": 1}
    episodes = train(config).episodes
    env, rng = make_vector_env("CartPole-v1", 1), np.random.default_rng(2)
    env.reset(seed=2)
    lengths, length = [], 0
    for _ in range(1000):
        _, _, terminated, truncated, _ = env.step(rng.integers(0, 2, size=1))
        length += 1
        if terminated[0] or truncated[0]:
            lengths.append(length)
            length = 0
    assert len(lengths) > 20 and [e["length"] for e in episodes] == lengths
    greedy_from_start = train({**config, "learning_starts": 0, "train_freq": 1000}).episodes
    assert [e["length"] for e in greedy_from_start] != lengths  # epsilon 0 without warm-up: the net acts


def test_continuous_action_env_is_rejected_before_training():
    with pytest.raises(ConfigError, match="env_id = 'Pendulum-v1': DQN needs a Discrete action space"):
        train({**TINY, "env_id": "Pendulum-v1"})


def test_nan_rewards_stop_the_run_as_diverged():
    with pytest.raises(TrainingDiverged, match="diverged"):
        train({**TINY, "env_id": nan_env.register()})

