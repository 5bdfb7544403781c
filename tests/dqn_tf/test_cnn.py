"""CNN Q-networks: which net a config and an env give, its shapes and maths (against numpy), uint8
pixels scaled in the graph, members still bit-exact solo runs, and greedy acting through TF."""

import numpy as np
import pytest
import tensorflow as tf
from numpy.lib.stride_tricks import sliding_window_view

from dqn_tf.config import ConfigError, TrainConfig, parse_config
from dqn_tf.learner import Learner
from dqn_tf.networks import Architecture, CompiledGreedy, initial_weights, q_values
from dqn_tf.observations import ObsSpec
from dqn_tf.policy import act, greedy
from dqn_tf.strategy import plan_devices

ATARI = ObsSpec((84, 84, 4), "uint8", 1 / 255, frame_stack=4)
MINATAR = ObsSpec((10, 10, 4), "uint8", 1.0)


def numpy_q(arch: Architecture, weights: list[np.ndarray], obs: np.ndarray) -> np.ndarray:
    """The same network written independently: float64 numpy, convolutions as sliding windows."""
    x = obs.astype(np.float64) * arch.obs_scale
    for i, (_, kernel, stride) in enumerate(arch.convs):
        windows = sliding_window_view(x, (kernel, kernel), axis=(1, 2))[:, ::stride, ::stride]
        x = np.maximum(np.einsum("bhwcij,ijcf->bhwf", windows, weights[2 * i]) + weights[2 * i + 1], 0.0)
    x = x.reshape(len(x), -1)
    first = len(arch.convs)
    for i in range(first, first + len(arch.hidden)):
        x = np.maximum(x @ weights[2 * i] + weights[2 * i + 1], 0.0)
    count = first + len(arch.hidden)
    head = x @ weights[2 * count] + weights[2 * count + 1]
    if not arch.dueling:
        return head
    advantage = x @ weights[2 * count + 2] + weights[2 * count + 3]
    return head + advantage - advantage.mean(axis=1, keepdims=True)


def pixels(shape: tuple[int, ...], high: int = 255, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, high + 1, shape).astype(np.uint8)


@pytest.mark.parametrize("obs_dim, expected", [
    (4, (256, 256)), ((84, 84, 4), "nature_cnn"), ((36, 36, 1), "nature_cnn"), ((10, 10, 4), "minatar_cnn"),
    ((35, 40, 3), "minatar_cnn"),
])
def test_auto_picks_the_net_from_the_observations(obs_dim, expected):
    assert Architecture(obs_dim, 3, "auto", False).net_arch == expected


def test_an_override_wins_over_auto():
    assert Architecture((84, 84, 4), 6, "minatar_cnn", False).net_arch == "minatar_cnn"
    mlp = Architecture((10, 10, 4), 3, (64,), False, "uint8")  # an MLP on the flattened pixels
    assert mlp.kernel_shapes()[0] == ("hidden_0", (400, 64))


def test_nature_cnn_has_the_shapes_and_parameter_count_of_sb3s():
    """SB3's NatureCNN + linear Q head on Pong (6 actions): 1,687,206 parameters."""
    arch = Architecture((84, 84, 4), 6, "auto", False, "uint8", 1 / 255)
    shapes = dict(arch.kernel_shapes())
    assert shapes == {"conv_0": (8, 8, 4, 32), "conv_1": (4, 4, 32, 64), "conv_2": (3, 3, 64, 64),
                      "hidden_0": (3136, 512), "q_values": (512, 6)}
    assert sum(w.size for w in initial_weights(arch, 0)) == 1_687_206


@pytest.mark.parametrize("values, fragments", [
    ({"net_arch": "resnet"}, ["net_arch = 'resnet'", "'nature_cnn'", "'minatar_cnn'", "'auto'"]),
    ({"net_arch": "nature_cnn"}, ["net_arch = 'nature_cnn'", "36x36", "env_id = 'CartPole-v1'", "(4,)"]),
    ({"env_id": "MinAtar/Breakout-v1", "net_arch": "nature_cnn"}, ["net_arch = 'nature_cnn'", "(10, 10, 4)"]),
    ({"net_arch": [64, 0]}, ["net_arch = [64, 0]", "positive"]),
    ({"precision": "float8"}, ["precision = 'float8'", "'mixed_bfloat16'", "'mixed_float16'"]),
])
def test_bad_net_arch_and_precision_are_refused_before_any_work(values, fragments):
    with pytest.raises(ConfigError) as error:
        parse_config(values)
    for fragment in fragments:
        assert fragment in str(error.value)


def test_initial_weights_are_seeded_glorot_per_layer():
    arch = Architecture((10, 10, 4), 3, "minatar_cnn", True, "uint8")
    first, again, other = initial_weights(arch, 5), initial_weights(arch, 5), initial_weights(arch, 6)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not np.array_equal(first[0], other[0])
    for (_, shape), kernel, bias in zip(arch.kernel_shapes(), first[::2], first[1::2]):
        receptive = int(np.prod(shape[:-2]))
        limit = np.sqrt(6 / (receptive * (shape[-2] + shape[-1])))  # Keras: fans count the receptive field
        assert kernel.shape == shape and np.abs(kernel).max() <= limit and np.abs(kernel).max() > 0.8 * limit
        assert not bias.any()


@pytest.mark.parametrize("obs, dueling", [(ATARI, False), (MINATAR, True)])
def test_q_values_match_an_independent_numpy_network(obs, dueling):
    arch = Architecture(obs.shape, 5, "auto", dueling, obs.dtype, obs.scale)
    weights = initial_weights(arch, 3)
    weights[1::2] = [np.random.default_rng(i).normal(scale=0.1, size=b.shape).astype(np.float32)
                     for i, b in enumerate(weights[1::2])]  # biases that matter
    images = pixels((6, *obs.shape), high=round(1 / obs.scale))
    ours = q_values(arch, [tf.constant(w) for w in weights], tf.constant(images)).numpy()
    assert ours.dtype == np.float32 and ours.shape == (6, 5)
    np.testing.assert_allclose(ours, numpy_q(arch, weights, images), rtol=1e-4, atol=1e-5)
    assert np.ptp(ours) > 1e-3  # the comparison is not between constants


def test_uint8_pixels_are_scaled_in_the_graph():
    arch = Architecture(ATARI.shape, 6, "auto", False, "uint8", ATARI.scale)
    floats = Architecture(ATARI.shape, 6, "auto", False)  # the same net fed floats, no scaling
    weights = [tf.constant(w) for w in initial_weights(arch, 0)]
    images = pixels((3, *ATARI.shape))
    np.testing.assert_allclose(q_values(arch, weights, tf.constant(images)),
                               q_values(floats, weights, tf.constant(images / np.float32(255))), rtol=1e-5, atol=1e-6)


def cnn_batch(members: int, steps: int = 3, batch: int = 16, obs: ObsSpec = MINATAR, seed: int = 0):
    rng = np.random.default_rng(seed)
    shape = (members, steps, batch)
    return {"obs": pixels((*shape, *obs.shape), 1, seed), "actions": rng.integers(0, 3, shape).astype(np.int32),
            "rewards": rng.normal(size=shape).astype(np.float32), "next_obs": pixels((*shape, *obs.shape), 1, seed + 1),
            "dones": (rng.random(shape) < 0.2).astype(np.float32)}


def test_a_cnn_member_is_bit_identical_to_its_solo_run():
    configs = [TrainConfig(batch_size=16, seed=1, learning_rate=1e-3, double_dqn=True),
               TrainConfig(batch_size=16, seed=2, learning_rate=5e-3, double_dqn=True)]
    plan = plan_devices("cpu")
    population, solo = Learner(configs, MINATAR, 3, plan), Learner(configs[1:], MINATAR, 3, plan)
    batch = cnn_batch(2)
    stats = population.train(batch, np.array([0.5, 0.5]))
    solo_stats = solo.train({name: values[1:] for name, values in batch.items()}, np.array([0.5]))
    assert population.arch.net_arch == "minatar_cnn" and stats["finite"].all()
    for ours, alone in zip(population.state()[1]["online"], solo.state()[0]["online"], strict=True):
        np.testing.assert_array_equal(ours, alone)
    assert not np.array_equal(population.state()[1]["online"][0], initial_weights(population.arch, 2)[0])
    np.testing.assert_allclose(stats["loss"][1], solo_stats["loss"][0], rtol=1e-6)


def test_greedy_acting_runs_the_cnn_in_tensorflow():
    configs = [TrainConfig(seed=seed, dueling=True) for seed in (3, 4)]
    learner = Learner(configs, MINATAR, 3, plan_devices("cpu"))
    policies = learner.greedy_layers()
    assert all(isinstance(p, CompiledGreedy) for p in policies)
    obs = pixels((2, 64, *MINATAR.shape), 1)
    expected = learner.q_values(obs).argmax(axis=2)
    for k, policy in enumerate(policies):
        np.testing.assert_array_equal(greedy(policy, obs[k]), expected[k])
        np.testing.assert_array_equal(greedy(policy, obs[k].astype(np.float32)), expected[k])  # as evaluate passes
    assert len(set(expected.ravel())) > 1
    rngs = [np.random.default_rng(0), np.random.default_rng(1)]
    actions = act(policies, obs, np.zeros(2), rngs, uniform=False)
    np.testing.assert_array_equal(actions, expected)
