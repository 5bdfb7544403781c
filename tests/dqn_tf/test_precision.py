"""precision: float32 | mixed_bfloat16 | mixed_float16. Mixed modes compute in 16 bits with
float32 weights and loss; float16 scales the loss and skips steps whose gradients overflow."""

import numpy as np
import pytest
import tensorflow as tf

from dqn_tf.config import TrainConfig
from dqn_tf.learner import Learner
from dqn_tf.observations import ObsSpec
from dqn_tf.optimizer import INITIAL_LOSS_SCALE, LOSS_SCALE_GROWTH_STEPS, LossScale
from dqn_tf.strategy import plan_devices

MINATAR = ObsSpec((10, 10, 4), "uint8", 1.0)


def batch(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    shape = (1, 2, 32)
    return {"obs": rng.integers(0, 2, (*shape, *MINATAR.shape)).astype(np.uint8),
            "actions": rng.integers(0, 3, shape).astype(np.int32), "rewards": rng.normal(size=shape).astype(np.float32),
            "next_obs": rng.integers(0, 2, (*shape, *MINATAR.shape)).astype(np.uint8),
            "dones": np.zeros(shape, np.float32)}


def learner(precision: str) -> Learner:
    return Learner([TrainConfig(seed=3, batch_size=32, precision=precision)], MINATAR, 3, plan_devices("cpu"))


@pytest.mark.parametrize("precision, dtype", [("mixed_bfloat16", "bfloat16"), ("mixed_float16", "float16")])
def test_mixed_precision_trains_close_to_float32(precision, dtype):
    reference, mixed = learner("float32"), learner(precision)
    assert mixed.arch.compute_dtype == dtype and mixed.online[0][0].dtype == tf.float32
    before = mixed.state()[0]["online"]
    expected, stats = reference.train(batch(), np.ones(1)), mixed.train(batch(), np.ones(1))
    assert stats["finite"].all()
    np.testing.assert_allclose(stats["loss"], expected["loss"], rtol=0.05)
    changed = [np.abs(a - b).max() for a, b in zip(mixed.state()[0]["online"], before)]
    assert min(changed) > 0  # every layer moved: no step was skipped
    moved = [a - b for a, b in zip(reference.state()[0]["online"], before)]
    mixed_moved = [a - b for a, b in zip(mixed.state()[0]["online"], before)]
    agreement = [np.mean(np.sign(a) == np.sign(b)) for a, b in zip(moved, mixed_moved)]
    assert min(agreement) > 0.9  # the same direction as float32's update


def test_only_float16_scales_the_loss_and_its_scale_is_checkpointed():
    assert learner("float32").optimizers[0].loss_scale is None
    assert learner("mixed_bfloat16").optimizers[0].loss_scale is None
    half = learner("mixed_float16")
    assert half.optimizers[0].loss_scale.scale.numpy() == INITIAL_LOSS_SCALE
    assert half.state()[0]["optimizer"][-2:] == [INITIAL_LOSS_SCALE, 0.0]  # scale, good steps


def test_float16_skips_a_step_whose_gradients_overflow_and_halves_the_scale():
    half = learner("mixed_float16")
    scale = half.optimizers[0].loss_scale
    scale.scale.assign(2.0**40)  # scaled gradients beyond float16's 65504
    before = half.state()[0]
    stats = half.train(batch(), np.zeros(1))
    assert stats["finite"].all()  # the loss itself is fine: only the step was skipped
    after = half.state()[0]
    for a, b in zip(after["online"] + after["optimizer"][:-2], before["online"] + before["optimizer"][:-2]):
        np.testing.assert_array_equal(a, b)  # weights, Adam's step count and moments untouched
    assert scale.scale.numpy() == 2.0**38  # halved once per skipped step (two steps)
    scale.scale.assign(2.0**10)
    half.train(batch(1), np.zeros(1))
    assert not np.array_equal(half.state()[0]["online"][0], before["online"][0])  # a sane scale applies


def test_the_scale_doubles_after_a_run_of_finite_steps():
    scale = LossScale()
    scale.good_steps.assign(LOSS_SCALE_GROWTH_STEPS - 2)
    assert bool(scale.update([tf.ones(3)])) and scale.scale.numpy() == INITIAL_LOSS_SCALE
    assert bool(scale.update([tf.ones(3)])) and scale.scale.numpy() == 2 * INITIAL_LOSS_SCALE
    assert scale.good_steps.numpy() == 0
    assert not bool(scale.update([tf.constant([1.0, np.inf])])) and scale.scale.numpy() == INITIAL_LOSS_SCALE
