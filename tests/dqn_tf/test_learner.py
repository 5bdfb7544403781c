import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dqn_tf.config import TrainConfig
from dqn_tf.learner import Learner
from dqn_tf.policy import GreedyPolicy
from dqn_tf.strategy import plan_devices


def huber(x, delta=1.0):
    return np.where(np.abs(x) <= delta, 0.5 * x**2, delta * (np.abs(x) - 0.5 * delta))


ONE = np.ones(1, dtype=bool)


def test_loss_uses_bellman_targets_that_bootstrap_only_when_not_terminated():
    """Each member's loss: Huber with its own delta and gamma on its own Bellman targets."""
    configs = [TrainConfig(net_arch=(16,), gamma=0.9, batch_size=8, seed=4),
               TrainConfig(net_arch=(16,), gamma=0.5, batch_size=8, seed=5, huber_delta=0.3)]
    learner = Learner(configs, obs_dim=3, n_actions=2, plan=plan_devices("cpu"))
    rng = np.random.default_rng(1)
    batch = {  # [member, step, batch, ...]
        "obs": rng.normal(size=(2, 1, 8, 3)).astype(np.float32),
        "actions": rng.integers(0, 2, (2, 1, 8)).astype(np.int32),
        "rewards": rng.normal(size=(2, 1, 8)).astype(np.float32) * 5,
        "next_obs": rng.normal(size=(2, 1, 8, 3)).astype(np.float32),
        "dones": np.array([[[0, 1] * 4]] * 2, dtype=np.float32),
    }
    q = GreedyPolicy(learner.greedy_layers())  # online == target before the first update
    scores, next_scores = q.scores(batch["obs"][:, 0]), q.scores(batch["next_obs"][:, 0])
    expected = []
    for k, config in enumerate(configs):
        q_taken = scores[k, np.arange(8), batch["actions"][k, 0]]
        targets = batch["rewards"][k, 0] + config.gamma * (1 - batch["dones"][k, 0]) * next_scores[k].max(1)
        expected.append(huber(q_taken - targets, config.huber_delta).mean())
    loss = learner.train(batch, np.zeros(2), np.ones(2, dtype=bool))["loss"]
    assert loss.shape == (2,) and loss == pytest.approx(expected, rel=1e-4)


def test_greedy_policy_mirrors_the_network():
    for dueling in (False, True):
        configs = [TrainConfig(net_arch=(24, 24), dueling=dueling, seed=seed) for seed in (9, 10)]
        learner = Learner(configs, obs_dim=4, n_actions=3, plan=plan_devices("cpu"))
        obs = np.random.default_rng(0).normal(size=(2, 256, 4)).astype(np.float32)
        tf_actions = np.argmax(learner.q_values(obs), axis=2)
        np.testing.assert_array_equal(GreedyPolicy(learner.greedy_layers()).greedy(obs), tf_actions)


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
