"""Populations: K agents in one process and one compiled train call, each exactly its solo run.

Members collect in lockstep (same-step autoreset) and each member's networks, optimizer, replay,
RNG and envs are its own, so member k must reproduce `train(config k)` exactly: the same
episodes, evaluations and gradient steps, whatever its mates do (early-ending episodes, other
seeds, other hyperparameters, stops). Its weights are bit-identical too; the *reported* mean loss
and Q of a train call may differ in the last bit (XLA fuses that reduction differently in a
larger graph; it does not feed the update), so those are compared to float rounding.
"""

from typing import ClassVar

import gymnasium as gym
import numpy as np
import pytest

from dqn_tf import ConfigError, TrainingDiverged, train, train_population
from dqn_tf.config import TrainConfig
from dqn_tf.learner import Learner
from dqn_tf.strategy import plan_devices

# An untrained CartPole policy ends episodes early and at different steps in every member.
CARTPOLE = {
    "total_timesteps": 1200, "net_arch": [32], "learning_starts": 200, "train_freq": 4, "gradient_steps": 2,
    "eval_freq": 400, "n_eval_episodes": 2, "buffer_size": 1000, "batch_size": 32, "exploration_fraction": 0.5,
}


def outcomes(configs: list[dict], on_event=None) -> list[tuple]:
    """Each member's run: episodes, evals, gradient and env steps, and its progress events'
    training loss and mean Q."""
    events = []

    def record(event):
        events.append(event)
        return on_event(event) if on_event else None

    results = train_population(configs, on_event=record)
    return [
        (r.episodes, r.evals, r.gradient_steps, r.env_steps,
         [(e["step"], e["loss"], e["q_mean"]) for e in events if e["member"] == k and e["event"] == "progress"])
        for k, r in enumerate(results)
    ]


def assert_same_run(a: tuple, b: tuple) -> None:
    assert a[:4] == b[:4]  # episodes, evals, gradient steps, env steps
    assert [(step, loss is None) for step, loss, _ in a[4]] == [(step, loss is None) for step, loss, _ in b[4]]
    stats = lambda outcome: [v for _, loss, q in outcome[4] if loss is not None for v in (loss, q)]
    np.testing.assert_allclose(stats(a), stats(b), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("loop", ["python", "compiled"])
def test_member_k_is_its_solo_run_with_early_ending_episodes(loop):
    configs = [{**CARTPOLE, "seed": s, "loop": loop} for s in (3, 4, 5)]
    population = outcomes(configs)
    lengths = [e["length"] for e in population[0][0]]
    assert len(set(lengths)) > 3 and max(lengths) < 100  # episodes end early, at different steps
    for k, config in enumerate(configs):
        assert_same_run(population[k], outcomes([config])[0])
    assert population[0][1] != population[1][1]
    assert sum(loss is not None for _, loss, _ in population[0][4]) > 50


@pytest.mark.parametrize("loop", ["python", "compiled"])
def test_packed_trials_are_their_solo_runs(loop):
    """Two trials (other learning rate, gamma, exploration) with two seeds each, n_envs 2."""
    trial_a = {**CARTPOLE, "n_envs": 2, "learning_rate": 1e-3, "gamma": 0.9, "loop": loop}
    trial_b = {**CARTPOLE, "n_envs": 2, "loop": loop, "learning_rate": 5e-3, "exploration_final_eps": 0.2, "tau": 0.5}
    configs = [{**trial, "seed": seed} for trial in (trial_a, trial_b) for seed in (0, 1)]
    packed = outcomes(configs)
    for k, config in enumerate(configs):
        assert_same_run(packed[k], outcomes([config])[0])
    assert packed[0][4] != packed[2][4]  # same seed, other hyperparameters: other losses


def test_member_k_is_its_solo_run_on_minatar_in_the_compiled_loop():
    """Stacked CNNs (convolutions as batched matmuls) and in-graph Breakout: member k's bits are
    its solo run's."""
    base = {**CARTPOLE, "env_id": "MinAtar/Breakout-v1", "total_timesteps": 600, "learning_starts": 200,
            "eval_freq": 300, "buffer_size": 600}
    configs = [{**base, "seed": 1}, {**base, "seed": 2, "learning_rate": 1e-3, "gamma": 0.9}]
    packed = outcomes(configs)
    for k, config in enumerate(configs):
        assert_same_run(packed[k], outcomes([config])[0])
    assert packed[0][0] != packed[1][0] and len(packed[0][0]) > 5  # other episodes, several of them


def test_members_with_different_learning_rates_learn_differently():
    # Same seed, so the same initial weights: only the rate differs.
    configs = [TrainConfig(net_arch=(16,), seed=7, learning_rate=lr) for lr in (1e-4, 1e-3, 1e-4)]
    learner = Learner(configs, obs_dim=3, n_actions=2, plan=plan_devices("cpu"))
    before = learner.state()
    rng = np.random.default_rng(0)
    one = {  # one batch, given to every member
        "obs": rng.normal(size=(1, 1, 64, 3)), "actions": rng.integers(0, 2, (1, 1, 64)),
        "rewards": rng.normal(size=(1, 1, 64)), "next_obs": rng.normal(size=(1, 1, 64, 3)),
        "dones": np.zeros((1, 1, 64)),
    }
    batch = {name: np.repeat(v, 3, axis=0).astype(np.int32 if name == "actions" else np.float32)
             for name, v in one.items()}
    learner.train(batch, np.zeros(3))
    change = [max(np.abs(a - b).max() for a, b in zip(after["online"], start["online"]))
              for after, start in zip(learner.state(), before)]
    # Adam's first step moves every weight by ~ its learning rate, whatever the gradient.
    assert change[1] == pytest.approx(10 * change[0], rel=1e-3)
    assert change[0] == change[2]  # identical members stay identical


class CountingEnv(gym.Env):
    """Constant observations, reward = action; counts the steps taken per first reset seed."""

    observation_space = gym.spaces.Box(-1, 1, (2,), np.float32)
    action_space = gym.spaces.Discrete(2)
    steps: ClassVar[dict[int, int]] = {}
    seed_ = None

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        if seed is not None:
            self.seed_ = seed
        return np.zeros(2, np.float32), {}

    def step(self, action):
        CountingEnv.steps[self.seed_] = CountingEnv.steps.get(self.seed_, 0) + 1
        return np.full(2, 0.5, np.float32), float(action), False, False, {}


def test_a_stopped_member_stops_alone_and_costs_nothing_more():
    gym.register("Counting-v0", entry_point=CountingEnv, max_episode_steps=50)
    config = {**CARTPOLE, "env_id": "Counting-v0", "n_envs": 2}
    configs = [{**config, "seed": s} for s in (10, 20, 30)]
    CountingEnv.steps.clear()
    prune_1 = lambda e: "pruned" if e["member"] == 1 and e["event"] == "eval" else None
    population = outcomes(configs, on_event=prune_1)
    results_steps = [p[3] for p in population]
    assert results_steps == [1200, 400, 1200]
    assert max(step for step, _, _ in population[1][4]) <= 400  # no events after its stop
    # Its envs (sub-envs seeded 20, 21) were stepped only until the stop.
    assert CountingEnv.steps[20] == CountingEnv.steps[21] == 200
    assert CountingEnv.steps[10] == CountingEnv.steps[31] == 600
    for k in (0, 2):  # the others are their solo runs
        assert_same_run(population[k], outcomes([configs[k]])[0])


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
    config = {**CARTPOLE, "env_id": "Poisoned-v0", "total_timesteps": 600, "eval_freq": 300}
    configs = [{**config, "seed": s} for s in (1, 666, 2)]
    results = train_population(configs)
    assert results[1].diverged and results[1].stop_reason.startswith("diverged: loss nan")
    assert results[1].gradient_steps == 0 and results[1].final_eval_mean is None
    population = outcomes(configs)
    for k in (0, 2):
        assert not results[k].diverged and results[k].env_steps == 600
        assert np.isfinite(results[k].final_eval_mean)
        assert_same_run(population[k], outcomes([configs[k]])[0])
    with pytest.raises(TrainingDiverged):
        train({**config, "seed": 666})


def test_members_must_share_shape_changing_fields():
    with pytest.raises(ConfigError) as error:
        train_population([{"batch_size": 32}, {"batch_size": 32}, {"batch_size": 64, "net_arch": [8]}])
    message = str(error.value)
    assert "batch_size differs (member 0 = 32, member 1 = 32, member 2 = 64)" in message
    assert "net_arch differs (member 0 = 'auto', member 1 = 'auto', member 2 = (8,))" in message
    with pytest.raises(ConfigError, match="at least one config"):
        train_population([])
