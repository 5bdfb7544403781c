import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dqn_tf.config import TrainConfig
from dqn_tf.learner import Learner
from dqn_tf.policy import greedy
from dqn_tf.strategy import plan_devices


def huber(x, delta=1.0):
    return np.where(np.abs(x) <= delta, 0.5 * x**2, delta * (np.abs(x) - 0.5 * delta))


def random_batch(members: int, batch: int, obs_dim: int = 3, seed: int = 1) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {  # [member, step, batch, ...]
        "obs": rng.normal(size=(members, 1, batch, obs_dim)).astype(np.float32),
        "actions": rng.integers(0, 2, (members, 1, batch)).astype(np.int32),
        "rewards": rng.normal(size=(members, 1, batch)).astype(np.float32) * 5,
        "next_obs": rng.normal(size=(members, 1, batch, obs_dim)).astype(np.float32),
        "dones": np.array([[[0, 1] * (batch // 2)]] * members, dtype=np.float32),
    }


def network(weights: list[np.ndarray], obs: np.ndarray, dueling: bool = False) -> np.ndarray:
    """The Q-network in numpy: ReLU MLP, then a Q head or V + A - mean(A)."""
    hidden = obs
    layers = len(weights) // 2 - (2 if dueling else 1)
    for i in range(layers):
        hidden = np.maximum(hidden @ weights[2 * i] + weights[2 * i + 1], 0.0)
    head = hidden @ weights[2 * layers] + weights[2 * layers + 1]
    if not dueling:
        return head
    advantage = hidden @ weights[2 * layers + 2] + weights[2 * layers + 3]
    return head + advantage - advantage.mean(axis=1, keepdims=True)


def test_loss_uses_bellman_targets_that_bootstrap_only_when_not_terminated():
    """Each member's loss: Huber with its own delta and gamma on its own Bellman targets."""
    configs = [TrainConfig(net_arch=(16,), gamma=0.9, batch_size=8, seed=4),
               TrainConfig(net_arch=(16,), gamma=0.5, batch_size=8, seed=5, huber_delta=0.3)]
    learner = Learner(configs, obs_dim=3, n_actions=2, plan=plan_devices("cpu"))
    batch = random_batch(2, 8)
    expected = []
    for k, (config, state) in enumerate(zip(configs, learner.state())):  # online == target before the update
        q = network(state["online"], batch["obs"][k, 0])[np.arange(8), batch["actions"][k, 0]]
        targets = batch["rewards"][k, 0] + config.gamma * (1 - batch["dones"][k, 0]) * \
            network(state["online"], batch["next_obs"][k, 0]).max(1)
        expected.append(huber(q - targets, config.huber_delta).mean())
    loss = learner.train(batch, np.zeros(2))["loss"]
    assert loss.shape == (2,) and loss == pytest.approx(expected, rel=1e-4)


@pytest.mark.parametrize("dueling", [False, True])
def test_double_dqn_target_picks_the_action_online_and_values_it_with_the_target_net(dueling):
    """Double DQN: r + gamma * Q_target(s', argmax_a Q_online(s', a)), not max_a Q_target(s', a)."""
    config = TrainConfig(net_arch=(16,), gamma=0.9, batch_size=64, seed=3, double_dqn=True, dueling=dueling)
    learner = Learner([config], obs_dim=3, n_actions=2, plan=plan_devices("cpu"))
    rng = np.random.default_rng(7)
    for variable in learner.target[0]:  # a target net that disagrees with the online one
        variable.assign(variable.numpy() + rng.normal(scale=0.5, size=variable.shape).astype(np.float32))
    state = learner.state()[0]
    batch = random_batch(1, 64)
    obs, next_obs, actions = batch["obs"][0, 0], batch["next_obs"][0, 0], batch["actions"][0, 0]
    q = network(state["online"], obs, dueling)[np.arange(64), actions]
    next_target = network(state["target"], next_obs, dueling)
    not_done = config.gamma * (1 - batch["dones"][0, 0])
    chosen = network(state["online"], next_obs, dueling).argmax(1)
    double = huber(q - (batch["rewards"][0, 0] + not_done * next_target[np.arange(64), chosen])).mean()
    vanilla = huber(q - (batch["rewards"][0, 0] + not_done * next_target.max(1))).mean()
    assert abs(double - vanilla) > 1e-3  # the batch tells the two targets apart
    assert learner.train(batch, np.zeros(1))["loss"][0] == pytest.approx(double, rel=1e-5)


def test_greedy_policy_mirrors_the_network():
    for dueling in (False, True):
        configs = [TrainConfig(net_arch=(24, 24), dueling=dueling, seed=seed) for seed in (9, 10)]
        learner = Learner(configs, obs_dim=4, n_actions=3, plan=plan_devices("cpu"))
        obs = np.random.default_rng(0).normal(size=(2, 256, 4)).astype(np.float32)
        tf_actions = np.argmax(learner.q_values(obs), axis=2)
        for k, layers in enumerate(learner.greedy_layers()):
            np.testing.assert_array_equal(greedy(layers, obs[k]), tf_actions[k])
        assert len(set(tf_actions.ravel())) == 3  # all actions occur: the comparison is not trivial


@pytest.mark.parametrize("double_dqn, dueling", [(False, False), (True, True)])
def test_two_replica_update_equals_one_device_update(double_dqn, dueling):
    script = Path(__file__).with_name("mirrored_update.py")
    completed = subprocess.run(
        [sys.executable, str(script), str(int(double_dqn)), str(int(dueling))],
        check=False, capture_output=True, text=True, timeout=180,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    assert report["replicas"] == [1, 2]
    assert report["max_weight_change"] > 1e-4  # the update did something
    assert report["max_weight_diff"] < 1e-5, report
    assert report["loss_diff"] < 1e-5, report


def test_training_runs_mirrored_on_two_logical_cpus():
    code = (
        "from dqn_tf import train; r = train({'total_timesteps': 600, 'net_arch': [16], "
        "'learning_starts': 100, 'train_freq': 4, 'gradient_steps': 2, 'eval_freq': 0, "
        "'n_eval_episodes': 2, 'batch_size': 32, 'devices': 'cpu:2'}); "
        "print(r.replicas, r.gradient_steps, ','.join(r.devices))"
    )
    completed = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=180)
    assert completed.returncode == 0, completed.stderr[-3000:]
    replicas, gradient_steps, devices = completed.stdout.split()
    assert replicas == "2" and int(gradient_steps) > 0
    assert devices.count("CPU") == 2
