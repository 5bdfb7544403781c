import numpy as np
import pytest

from dqn_tf.replay import ReplayBuffer
from dqn_tf.schedules import crossings, linear_epsilon, polyak_coefficient


def rows(start: int, n: int, members: int = 1):
    """n transitions per member, numbered start.. (member k's values offset by 1000 * k)."""
    values = np.arange(start, start + n, dtype=np.float32)[None] + 1000 * np.arange(members)[:, None]
    obs = np.stack([values, values], 2)
    return obs, values.astype(np.int32), values, obs + 1, values % 2


def test_ring_buffer_overwrites_the_oldest():
    buffer = ReplayBuffer(capacity=5, obs_dim=2)
    buffer.add(*rows(0, 3))
    buffer.add(*rows(3, 4))  # wraps: 0 and 1 are gone
    assert buffer.size == 5 and buffer.pos == 2
    assert sorted(buffer.actions[0].tolist()) == [2, 3, 4, 5, 6]
    buffer.add(*rows(10, 12))  # more than capacity at once: the newest 5 survive
    assert sorted(buffer.actions[0].tolist()) == [17, 18, 19, 20, 21]


def test_sample_keeps_fields_aligned_and_each_member_samples_as_alone():
    buffer = ReplayBuffer(capacity=100, obs_dim=2, members=2)
    buffer.add(*rows(0, 40, members=2))
    rngs = [np.random.default_rng(0), np.random.default_rng(1)]
    batch = buffer.sample(rngs, (50, 64))
    assert batch["obs"].shape == (2, 50, 64, 2) and batch["actions"].shape == (2, 50, 64)
    np.testing.assert_array_equal(batch["obs"][..., 0], batch["actions"])
    np.testing.assert_array_equal(batch["next_obs"][..., 0], batch["rewards"] + 1)
    counts = np.bincount(batch["actions"][0].ravel(), minlength=40)
    assert counts.min() > 0 and counts.max() < 3 * counts.mean()  # only the 40 stored rows
    assert batch["actions"][0].max() < 40
    assert batch["actions"][1].min() >= 1000 and batch["actions"][1].max() < 1040  # its own rows
    alone = ReplayBuffer(capacity=100, obs_dim=2)
    alone.add(*(x[1:] for x in rows(0, 40, members=2)))
    np.testing.assert_array_equal(  # member 1 samples what a buffer of its own would
        alone.sample([np.random.default_rng(1)], (50, 64))["actions"][0], batch["actions"][1])


def test_keep_drops_stopped_members():
    buffer = ReplayBuffer(capacity=10, obs_dim=2, members=3)
    buffer.add(*rows(0, 4, members=3))
    buffer.keep([0, 2])
    assert buffer.actions.shape == (2, 10)
    assert buffer.actions[1, :4].tolist() == [2000, 2001, 2002, 2003]
    buffer.add(*(x[[0, 2]] for x in rows(4, 1, members=3)))
    assert buffer.size == 5 and buffer.actions[:, 4].tolist() == [4, 2004]


def test_state_round_trip():
    buffer = ReplayBuffer(capacity=8, obs_dim=2, members=2)
    buffer.add(*rows(0, 11, members=2))
    copy = ReplayBuffer(capacity=8, obs_dim=2, members=2)
    copy.load_state(buffer.state())
    original = buffer.sample([np.random.default_rng(1)] * 2, (3, 4))
    restored = copy.sample([np.random.default_rng(1)] * 2, (3, 4))
    for name, values in original.items():
        np.testing.assert_array_equal(values, restored[name])
    assert (copy.pos, copy.size) == (buffer.pos, buffer.size) == (3, 8)


def test_linear_epsilon_schedule():
    args = {"total": 1000, "fraction": 0.1, "initial": 1.0, "final": 0.05}
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
