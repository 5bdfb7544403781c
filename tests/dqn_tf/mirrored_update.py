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
# A population of two members with different learning rates: the batch split must hold per member.
configs = [config, config.replace(seed=12, learning_rate=1e-2)]
learners = [Learner(configs, 4, 3, plan) for plan in (single, mirrored)]
rng = np.random.default_rng(0)
shape = (2, 3, 64)  # members, gradient steps, batch
batch = {
    "obs": rng.normal(size=(*shape, 4)).astype(np.float32),
    "actions": rng.integers(0, 3, shape).astype(np.int32),
    "rewards": rng.normal(size=shape).astype(np.float32),
    "next_obs": rng.normal(size=(*shape, 4)).astype(np.float32),
    "dones": (rng.random(shape) < 0.3).astype(np.float32),
}
stats = [learner.train(batch, np.full(2, 0.5)) for learner in learners]
weights = [[w for member in learner.state() for w in member["online"]] for learner in learners]
initial = [w for member in Learner(configs, 4, 3, single).state() for w in member["online"]]
print(json.dumps({
    "replicas": [learner.replicas for learner in learners],
    "max_weight_diff": max(float(np.abs(a - b).max()) for a, b in zip(*weights)),
    "max_weight_change": max(float(np.abs(a - b).max()) for a, b in zip(weights[0], initial)),
    "loss_diff": float(np.abs(stats[0]["loss"] - stats[1]["loss"]).max()),
    "devices": list(mirrored.devices),
}))
