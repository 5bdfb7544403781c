"""Populations: K agents in one process and one compiled train call, each behaving as its own run.

Comparisons use envs whose episodes all end at the time limit (Acrobot under an untrained
policy, a constant env): then every member counts the same transitions, the shared training
phases fall where each separate run's would, and member k must reproduce the separate run with
its seed: the same episodes, evaluations and gradient steps exactly, and the same training loss
and mean Q at every progress event up to float rounding (XLA's batched matmuls for K > 1 round
differently from K = 1 in the last bit). Sync vector envs seed each member's sub-envs with its
own seed, as a separate run does.
"""

import gymnasium as gym
import numpy as np
import pytest

from dqn_tf import ConfigError, TrainingDiverged, train, train_population
from dqn_tf.config import TrainConfig
from dqn_tf.learner import Learner
from dqn_tf.strategy import plan_devices

ACROBOT = {
    "env_id": "Acrobot-v1", "total_timesteps": 1000, "net_arch": [32], "learning_starts": 200,
    "train_freq": 4, "gradient_steps": 2, "eval_freq": 500, "n_eval_episodes": 1,
    "buffer_size": 1000, "batch_size": 32, "exploration_fraction": 0.5,
}


def run(configs: list[dict]) -> list[tuple]:
    """Each member's outcome: result fields plus its progress events' training loss and mean Q
    (untrained Acrobot episodes all return -500, so the losses carry the learning signal)."""
    events = []
    results = train_population(configs, on_event=events.append)
    return [
        (r.episodes, r.evals, r.gradient_steps, r.env_steps,
         [(e["step"], e["loss"], e["q_mean"]) for e in events if e["member"] == k and e["event"] == "progress"])
        for k, r in enumerate(results)
    ]


def assert_same_run(a: tuple, b: tuple) -> None:
    assert a[:4] == b[:4]  # episodes, evals, gradient steps, env steps
    assert [(step, loss is None) for step, loss, _ in a[4]] == [(step, loss is None) for step, loss, _ in b[4]]
    stats = lambda outcome: [v for _, loss, q in outcome[4] if loss is not None for v in (loss, q)]
    np.testing.assert_allclose(stats(a), stats(b), rtol=1e-4, atol=1e-6)


def test_member_k_reproduces_the_separate_run_with_seed_k():
    configs = [{**ACROBOT, "seed": 3}, {**ACROBOT, "seed": 4, "learning_rate": 1e-3, "gamma": 0.9}]
    population = run(configs)
    for k, config in enumerate(configs):
        assert_same_run(population[k], run([config])[0])
    assert population[0][4] != population[1][4]
    assert sum(loss is not None for _, loss, _ in population[0][4]) > 50


def test_members_with_different_learning_rates_learn_differently():
    # Same seed, so the same envs, initial weights, exploration and samples: only the rate differs.
    configs = [TrainConfig(net_arch=(16,), seed=7, learning_rate=lr) for lr in (1e-4, 1e-3, 1e-4)]
    learner = Learner(configs, obs_dim=3, n_actions=2, plan=plan_devices("cpu"))
    before = learner.state()["online"]
    rng = np.random.default_rng(0)
    one = {  # one batch, given to every member
        "obs": rng.normal(size=(1, 1, 64, 3)), "actions": rng.integers(0, 2, (1, 1, 64)),
        "rewards": rng.normal(size=(1, 1, 64)), "next_obs": rng.normal(size=(1, 1, 64, 3)),
        "dones": np.zeros((1, 1, 64)),
    }
    batch = {name: np.repeat(v, 3, axis=0).astype(np.int32 if name == "actions" else np.float32)
             for name, v in one.items()}
    learner.train(batch, np.zeros(3), np.ones(3, dtype=bool))
    change = [np.abs(after - start).max(axis=tuple(range(1, start.ndim)))
              for after, start in zip(learner.state()["online"], before)]
    for per_member in change:
        # Adam's first step moves every weight by ~ its learning rate, whatever the gradient.
        assert per_member[1] == pytest.approx(10 * per_member[0], rel=1e-3)
        assert per_member[0] == per_member[2]  # identical members stay identical
    results = run([{**ACROBOT, "seed": 5, "learning_rate": lr} for lr in (1e-2, 1e-2, 1e-4)])
    assert results[0] == results[1]  # identical members stay identical, bit for bit
    with pytest.raises(AssertionError):
        assert_same_run(results[0], results[2])


def test_stopping_one_member_does_not_stop_the_others():
    configs = [{**ACROBOT, "seed": s} for s in (1, 2, 3)]
    events = []

    def prune_member_1(event):
        events.append(event)
        return "pruned" if event["member"] == 1 and event["event"] == "eval" else None

    results = train_population(configs, on_event=prune_member_1)
    assert results[1].stopped_early and results[1].stop_reason == "pruned"
    assert results[1].env_steps == 500 and len(results[1].evals) == 1
    assert max(e["step"] for e in events if e["member"] == 1) == 500  # no events after its stop
    unpruned = run([configs[0], configs[2]])
    for k, alone in zip((0, 2), unpruned):
        assert not results[k].stopped_early and results[k].env_steps == 1000
        member_events = [(e["step"], e["loss"], e["q_mean"]) for e in events
                         if e["member"] == k and e["event"] == "progress"]
        outcome = (results[k].episodes, results[k].evals, results[k].gradient_steps, 1000, member_events)
        assert_same_run(outcome, alone)


class PoisonedEnv(gym.Env):
    """Constant observations; NaN rewards when first reset with seed 666 (one member's envs)."""

    observation_space = gym.spaces.Box(-1, 1, (2,), np.float32)
    action_space = gym.spaces.Discrete(2)
    poisoned = False

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        if seed is not None:
            self.poisoned = seed == 666
        return np.zeros(2, np.float32), {}

    def step(self, action):
        reward = float("nan") if self.poisoned else float(action)
        return np.full(2, 0.5, np.float32), reward, False, False, {}


def test_a_diverging_member_fails_alone():
    gym.register("Poisoned-v0", entry_point=PoisonedEnv, max_episode_steps=50)
    config = {**ACROBOT, "env_id": "Poisoned-v0", "total_timesteps": 600, "eval_freq": 300}
    results = train_population([{**config, "seed": 1}, {**config, "seed": 666}, {**config, "seed": 2}])
    assert results[1].diverged and results[1].stop_reason.startswith("diverged: loss nan")
    assert results[1].gradient_steps == 0 and results[1].final_eval_mean is None
    outcomes = run([{**config, "seed": s} for s in (1, 666, 2)])
    healthy = run([{**config, "seed": 1}, {**config, "seed": 2}])
    for k, alone in zip((0, 2), healthy):
        assert not results[k].diverged and results[k].env_steps == 600
        assert np.isfinite(results[k].final_eval_mean)
        assert_same_run(outcomes[k], alone)
    with pytest.raises(TrainingDiverged):
        train({**config, "seed": 666})


def test_members_must_share_shape_changing_fields():
    with pytest.raises(ConfigError) as error:
        train_population([{"batch_size": 32}, {"batch_size": 32}, {"batch_size": 64, "net_arch": [8]}])
    message = str(error.value)
    assert "batch_size differs (member 0 = 32, member 1 = 32, member 2 = 64)" in message
    assert "net_arch differs (member 0 = (256, 256), member 1 = (256, 256), member 2 = (8,))" in message
    with pytest.raises(ConfigError, match="at least one config"):
        train_population([])
