"""Run as a script (fresh process): one update on 2 logical CPUs vs one device, same batch.

Logical CPU devices can only be made before TensorFlow initialises, hence a separate process.
Prints a JSON line with the largest weight and loss differences.
"""

import json
import sys

import numpy as np

from dqn_tf.config import TrainConfig
from dqn_tf.learner import Learner
from dqn_tf.strategy import plan_devices

double_dqn, dueling = sys.argv[1] == "1", sys.argv[2] == "1"
mirrored = plan_devices("cpu:2")  # first: splits the CPU before TF starts
single = plan_devices("cpu")
config = TrainConfig(batch_size=64, net_arch=(32, 32), double_dqn=double_dqn, dueling=dueling, seed=11)
learners = [Learner(config, 4, 3, plan) for plan in (single, mirrored)]
rng = np.random.default_rng(0)
steps = 3
batch = {
    "obs": rng.normal(size=(steps, 64, 4)).astype(np.float32),
    "actions": rng.integers(0, 3, (steps, 64)).astype(np.int32),
    "rewards": rng.normal(size=(steps, 64)).astype(np.float32),
    "next_obs": rng.normal(size=(steps, 64, 4)).astype(np.float32),
    "dones": (rng.random((steps, 64)) < 0.3).astype(np.float32),
}
stats = [learner.train(batch, target_tau=0.5) for learner in learners]
weights = [learner.online.get_weights() for learner in learners]
initial = Learner(config, 4, 3, single).online.get_weights()
print(json.dumps({
    "replicas": [learner.replicas for learner in learners],
    "max_weight_diff": max(float(np.abs(a - b).max()) for a, b in zip(*weights)),
    "max_weight_change": max(float(np.abs(a - b).max()) for a, b in zip(weights[0], initial)),
    "loss_diff": abs(stats[0]["loss"] - stats[1]["loss"]),
    "devices": list(mirrored.devices),
}))
