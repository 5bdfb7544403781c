"""Run as a script (fresh process: logical CPU devices exist only if made before TensorFlow
starts): a CNN update on 2 logical CPUs vs one device, and what the 2-replica step's graph does.

Prints one JSON line: weight / loss differences between the two, differences between the two
replicas' copies of every variable, and from the traced train call: collective all-reduce ops
per device, the devices each replica's gradient function runs on (XLA-compiled for an MLP; CNNs
skip XLA on CPUs), and every data edge between two devices. A control graph that reduces
gradients with `strategy.reduce` (to the host) shows what such an edge looks like, so the check
is known to see it.
"""

import collections
import json
import sys

import numpy as np
import tensorflow as tf

from dqn_tf.config import TrainConfig
from dqn_tf.learner import Learner
from dqn_tf.observations import ObsSpec
from dqn_tf.strategy import plan_devices

ALL_REDUCE_OPS = ("CollectiveReduceV2", "CollectiveReduce", "NcclAllReduce")


def cross_device_edges(graph_def) -> list[tuple[str, str]]:
    """(consumer op, producer op) wherever a node reads a tensor made on another device."""
    edges = []
    for nodes in [list(graph_def.node)] + [list(f.node_def) for f in graph_def.library.function]:
        made = {node.name: node for node in nodes}
        for node in nodes:
            for source in node.input:
                producer = made.get(source.lstrip("^").split(":")[0])
                if not source.startswith("^") and producer and producer.device and node.device \
                        and producer.device != node.device:
                    edges.append((node.op, producer.op))
    return edges


def gradient_calls(learner: Learner, batch: dict[str, np.ndarray]) -> tuple[object, dict[str, list[str]]]:
    """The traced train call's graph, and the devices its gradient functions are called on,
    split into XLA-compiled and not."""
    tau = tf.ones([len(learner.configs)])
    graph = learner._train.get_concrete_function(*learner._distribute(batch), tau).graph.as_graph_def()
    functions = {f.signature.name: f for f in graph.library.function}
    calls: dict[str, list[str]] = {"xla": [], "plain": []}
    for f in functions.values():
        for node in f.node_def:
            called = functions.get(node.attr["f"].func.name)
            if called is not None and "_gradients" in called.signature.name:
                xla = "_XlaMustCompile" in called.attr and called.attr["_XlaMustCompile"].b
                calls["xla" if xla else "plain"].append(node.device)
    return graph, {kind: sorted(devices) for kind, devices in calls.items()}


def host_reduce_control(strategy: tf.distribute.Strategy):
    """The pattern this learner no longer has: replica gradients reduced to one device."""
    with strategy.scope():
        weights = tf.Variable(tf.ones([3]))

    @tf.function
    def step(x):
        def replica(x):
            with tf.GradientTape() as tape:
                loss = tf.reduce_sum(weights * x)
            return tape.gradient(loss, weights)
        return strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(replica, args=(x,)), axis=None)

    return step.get_concrete_function(tf.constant([1.0, 2.0, 3.0])).graph.as_graph_def()


def main() -> None:
    double_dqn, dueling = sys.argv[1] == "1", sys.argv[2] == "1"
    mirrored = plan_devices("cpu:2")  # first: splits the CPU before TF starts
    single = plan_devices("cpu")
    spec = ObsSpec((10, 10, 4), "uint8", 1.0)
    config = TrainConfig(batch_size=32, net_arch="minatar_cnn", double_dqn=double_dqn, dueling=dueling, seed=11)
    configs = [config, config.replace(seed=12, learning_rate=1e-2)]  # the split must hold per member
    learners = [Learner(configs, spec, 3, plan) for plan in (single, mirrored)]
    rng = np.random.default_rng(0)
    shape = (2, 3, 32)  # members, gradient steps, batch
    batch = {"obs": rng.integers(0, 2, (*shape, *spec.shape)).astype(np.uint8),
             "actions": rng.integers(0, 3, shape).astype(np.int32),
             "rewards": rng.normal(size=shape).astype(np.float32),
             "next_obs": rng.integers(0, 2, (*shape, *spec.shape)).astype(np.uint8),
             "dones": (rng.random(shape) < 0.3).astype(np.float32)}
    tau = np.full(2, 0.5)
    stats = [learner.train(batch, tau) for learner in learners]
    weights = [[w for member in learner.state() for w in member["online"]] for learner in learners]
    initial = [w for member in Learner(configs, spec, 3, single).state() for w in member["online"]]
    two = learners[1]
    copies = [mirrored.strategy.experimental_local_results(v) for member in two.online + two.target
              for v in member]
    graph, cnn_calls = gradient_calls(two, batch)
    all_reduces = collections.Counter(node.device for f in graph.library.function for node in f.node_def
                                      if node.op in ALL_REDUCE_OPS)
    mlp = Learner([TrainConfig(batch_size=32, net_arch=(16,), seed=1)], 4, 3, mirrored)
    vectors = {**batch, "obs": rng.normal(size=(1, 3, 32, 4)).astype(np.float32),
               "next_obs": rng.normal(size=(1, 3, 32, 4)).astype(np.float32)}
    _, mlp_calls = gradient_calls(mlp, {name: values[:1] for name, values in vectors.items()})
    print(json.dumps({
        "replicas": [learner.replicas for learner in learners],
        "max_weight_diff": max(float(np.abs(a - b).max()) for a, b in zip(*weights)),
        "max_weight_change": max(float(np.abs(a - b).max()) for a, b in zip(weights[0], initial)),
        "loss_diff": float(np.abs(stats[0]["loss"] - stats[1]["loss"]).max()),
        "replica_copies_max_diff": max(float(np.abs(a.numpy() - b.numpy()).max()) for a, b in copies),
        "all_reduce_devices": dict(all_reduces),
        "cnn_gradient_calls": cnn_calls,
        "mlp_gradient_calls": mlp_calls,
        "cross_device_edges": cross_device_edges(graph),
        "control_cross_device_edges": cross_device_edges(host_reduce_control(mirrored.strategy)),
        "devices": list(mirrored.devices),
    }))


if __name__ == "__main__":
    main()
