"""MirroredStrategy as multi-GPU nodes need it, checked on 2 logical CPUs (in a fresh process:
logical devices exist only if made before TensorFlow starts; see mirrored_cnn.py)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def report() -> dict:
    script = Path(__file__).with_name("mirrored_cnn.py")
    completed = subprocess.run([sys.executable, str(script), "1", "1"], check=False, capture_output=True,
                               text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-3000:]
    return json.loads(completed.stdout.strip().splitlines()[-1])


def test_a_cnn_update_on_two_replicas_equals_the_one_device_update(report):
    assert report["replicas"] == [1, 2]
    assert report["max_weight_change"] > 1e-3  # the update did something
    assert report["max_weight_diff"] < 1e-5, report
    assert report["loss_diff"] < 1e-5, report
    assert report["replica_copies_max_diff"] == 0.0  # every replica applied the same update to its copy


def test_gradients_are_all_reduced_on_the_replicas_not_copied_to_one_device(report):
    devices = report["devices"]
    assert sorted(report["all_reduce_devices"]) == sorted(f"/job:localhost/replica:0/task:0{d}" for d in devices)
    assert report["cross_device_edges"] == []  # no tensor of one replica is read on another device
    assert report["control_cross_device_edges"]  # a host reduce shows here: the check sees such edges


def test_each_replica_computes_its_gradients_on_its_own_device_xla_compiled_where_it_pays(report):
    """XLA cannot span devices, so each replica's forward and backward pass is compiled on its own
    device: for MLPs (and on GPUs); CNNs on CPUs skip XLA (its CPU convolutions are ~10x slower)."""
    replicas = sorted(f"/job:localhost/replica:0/task:0{d}" for d in report["devices"])
    assert report["mlp_gradient_calls"] == {"xla": replicas, "plain": []}
    assert report["cnn_gradient_calls"] == {"xla": [], "plain": replicas}
