import numpy as np
import pytest

from dqn_tf.replay import ReplayBuffer
from dqn_tf.schedules import crossings, linear_epsilon, polyak_coefficient


def rows(start: int, n: int):
    values = np.arange(start, start + n, dtype=np.float32)
    return (np.stack([values, values], 1), values.astype(np.int32), values, np.stack([values, values], 1) + 1, values % 2)


def test_ring_buffer_overwrites_the_oldest():
    buffer = ReplayBuffer(capacity=5, obs_dim=2)
    buffer.add(*rows(0, 3))
    buffer.add(*rows(3, 4))  # wraps: 0 and 1 are gone
    assert buffer.size == 5 and buffer.pos == 2
    assert sorted(buffer.actions.tolist()) == [2, 3, 4, 5, 6]
    buffer.add(*rows(10, 12))  # more than capacity at once: the newest 5 survive
    assert sorted(buffer.actions.tolist()) == [17, 18, 19, 20, 21]


def test_sample_keeps_fields_aligned_and_covers_uniformly():
    buffer = ReplayBuffer(capacity=100, obs_dim=2)
    buffer.add(*rows(0, 40))
    batch = buffer.sample(np.random.default_rng(0), (50, 64))
    assert batch["obs"].shape == (50, 64, 2) and batch["actions"].shape == (50, 64)
    np.testing.assert_array_equal(batch["obs"][..., 0], batch["actions"])
    np.testing.assert_array_equal(batch["next_obs"][..., 0], batch["rewards"] + 1)
    counts = np.bincount(batch["actions"].ravel(), minlength=40)
    assert counts.min() > 0 and counts.max() < 3 * counts.mean()  # only the 40 stored rows
    assert batch["actions"].max() < 40


def test_state_round_trip():
    buffer = ReplayBuffer(capacity=8, obs_dim=2)
    buffer.add(*rows(0, 11))
    copy = ReplayBuffer(capacity=8, obs_dim=2)
    copy.load_state(buffer.state())
    original = buffer.sample(np.random.default_rng(1), (3, 4))
    restored = copy.sample(np.random.default_rng(1), (3, 4))
    for name, values in original.items():
        np.testing.assert_array_equal(values, restored[name])
    assert (copy.pos, copy.size) == (buffer.pos, buffer.size)


def test_linear_epsilon_schedule():
    args = dict(total=1000, fraction=0.1, initial=1.0, final=0.05)
    assert linear_epsilon(0, **args) == 1.0
    assert linear_epsilon(50, **args) == pytest.approx(0.525)
    assert linear_epsilon(100, **args) == 0.05
    assert linear_epsilon(900, **args) == 0.05
    assert linear_epsilon(10, total=1000, fraction=0.0, initial=1.0, final=0.1) == 0.1


def test_crossings_count_multiples_passed():
    assert crossings(0, 1, 10) == 0
    assert crossings(9, 10, 10) == 1
    assert crossings(9, 31, 10) == 3


@pytest.mark.parametrize("tau, updates", [(1.0, 3), (0.1, 1), (0.1, 4), (0.5, 0)])
def test_polyak_updates_collapse_into_one(tau, updates):
    online, target = 3.0, -1.0
    repeated = target
    for _ in range(updates):
        repeated = tau * online + (1 - tau) * repeated
    coefficient = polyak_coefficient(tau, updates)
    assert coefficient * online + (1 - coefficient) * target == pytest.approx(repeated)
