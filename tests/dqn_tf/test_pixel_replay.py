"""Pixel replay: every frame stored once, yet every sampled obs / next_obs is bit for bit what was
added (real Atari and MinAtar envs, episode ends, life losses, ring wrap-around, many members);
its memory is known before it is allocated, and a buffer that cannot fit is refused."""

import numpy as np
import pytest

from dqn_tf import train
from dqn_tf.config import ConfigError
from dqn_tf.envs import Collector
from dqn_tf.host_memory import available_bytes, replay_bytes
from dqn_tf.observations import ObsSpec
from dqn_tf.replay import FIELDS, ReplayBuffer

ATARI = ObsSpec((84, 84, 4), "uint8", 1 / 255, frame_stack=4)


class Reference:
    """What a buffer without deduplication holds: every obs and next_obs row as added."""

    def __init__(self, capacity: int, members: int, shape: tuple[int, ...]):
        self.obs = np.zeros((members, capacity, *shape), np.uint8)
        self.next_obs = np.zeros_like(self.obs)
        self.capacity, self.pos = capacity, 0

    def add(self, obs: np.ndarray, next_obs: np.ndarray) -> None:
        rows = (self.pos + np.arange(obs.shape[1])) % self.capacity
        self.obs[:, rows], self.next_obs[:, rows] = obs, next_obs
        self.pos = (self.pos + obs.shape[1]) % self.capacity


def assert_samples_match(buffer: ReplayBuffer, reference: Reference, seed: int) -> None:
    members = len(reference.obs)
    batch = buffer.sample([np.random.default_rng(seed + k) for k in range(members)], (3, 32))
    idx = np.stack([np.random.default_rng(seed + k).integers(0, buffer.size, (3, 32)) for k in range(members)])
    rows = np.arange(members)[:, None, None]
    np.testing.assert_array_equal(batch["obs"], reference.obs[rows, idx])
    np.testing.assert_array_equal(batch["next_obs"], reference.next_obs[rows, idx])
    assert list(batch) == list(FIELDS) and batch["obs"].dtype == np.uint8


def collect(env_id: str, n_envs: int, seeds: list[int], steps: int, capacity: int) -> tuple[ReplayBuffer, dict]:
    """Random play in the real training envs, into a pixel replay and a reference, checking
    samples along the way; returns the buffer and counts of what happened."""
    collector = Collector(env_id, n_envs, seeds)
    spec = ObsSpec.of(collector.envs[0])
    buffer = ReplayBuffer(capacity, spec, len(seeds), n_envs)
    reference = Reference(capacity, len(seeds), spec.shape)
    rng = np.random.default_rng(0)
    n_actions = collector.envs[0].single_action_space.n
    seen = {"ends": 0, "continued_ends": 0}
    for step in range(steps):
        actions = rng.integers(0, n_actions, (len(seeds), n_envs))
        obs, rewards, next_obs, terminated = collector.step(actions, (step + 1) * n_envs)
        buffer.add(obs, actions, rewards, next_obs, terminated)
        reference.add(obs, next_obs)
        seen["ends"] += int(terminated.sum())
        seen["continued_ends"] += int((terminated & (next_obs == collector.obs).all(axis=(2, 3, 4))).sum())
        if step % 25 == 0 or step >= steps - 3:
            assert_samples_match(buffer, reference, step)
    collector.close()
    return buffer, seen


def test_atari_samples_equal_what_was_added_across_life_losses_games_and_wrap_around():
    buffer, seen = collect("ALE/Breakout-v5", n_envs=2, seeds=[0, 1], steps=500, capacity=300)
    assert buffer.frames.stack == 4 and buffer.frames.frames.shape[-1] == 1  # one grey frame per transition
    assert seen["continued_ends"] > 0  # life losses: terminal for training, yet the game goes on
    assert seen["ends"] > seen["continued_ends"]  # and real game overs with resets
    assert buffer.frames.total == 1000 > buffer.capacity  # wrapped around


def test_minatar_samples_equal_what_was_added():
    buffer, seen = collect("MinAtar/Breakout-v1", n_envs=3, seeds=[4], steps=200, capacity=250)
    assert buffer.frames.stack == 1 and seen["ends"] > 5 and buffer.frames.total > buffer.capacity


def stacked_steps(members: int, n: int, steps: int, end_every: int, seed: int = 0):
    """Frame-stacked observations (S = 2, two channels per frame) whose episodes all end every
    `end_every` steps and restart from a fresh stack, as same-step autoreset hands them over."""
    rng = np.random.default_rng(seed)
    frame = lambda: rng.integers(0, 256, (members, n, 3, 2, 2), dtype=np.uint8)
    obs = np.concatenate([frame(), frame()], axis=-1)
    for step in range(steps):
        next_obs = np.concatenate([obs[..., 2:], frame()], axis=-1)
        yield obs, next_obs
        obs = np.concatenate([frame(), frame()], axis=-1) if (step + 1) % end_every == 0 else next_obs


def fill(buffer: ReplayBuffer, reference: Reference, steps) -> None:
    for obs, next_obs in steps:
        zeros = np.zeros(obs.shape[:2], np.int32)
        buffer.add(obs, zeros, zeros.astype(np.float32), next_obs, zeros.astype(np.float32))
        reference.add(obs, next_obs)


def test_episode_start_ring_grows_when_every_step_starts_an_episode():
    spec = ObsSpec((3, 2, 4), "uint8", 1 / 255, frame_stack=2)
    buffer, reference = ReplayBuffer(150, spec, 2, 3), Reference(150, 2, spec.shape)
    fill(buffer, reference, stacked_steps(2, 3, 120, end_every=1))
    assert buffer.frames.starts.shape[1] > 3 + 64  # 150 live transitions, each its episode's first
    assert_samples_match(buffer, reference, 1)


def test_members_keep_and_checkpoints_with_pixels():
    spec = ObsSpec((3, 2, 4), "uint8", 1 / 255, frame_stack=2)
    buffer, reference = ReplayBuffer(40, spec, 3, 2), Reference(40, 3, spec.shape)
    fill(buffer, reference, stacked_steps(3, 2, 50, end_every=7))
    buffer.keep([0, 2])
    reference.obs, reference.next_obs = reference.obs[[0, 2]], reference.next_obs[[0, 2]]
    assert_samples_match(buffer, reference, 2)
    copy = ReplayBuffer(40, spec, 2, 2)
    copy.load_state(buffer.state())
    steps = list(stacked_steps(2, 2, 60, end_every=5, seed=1))[50:]  # both go on from where they were
    fill(buffer, Reference(40, 2, spec.shape), steps)
    fill(copy, reference, steps)
    assert_samples_match(copy, reference, 3)
    for name in FIELDS:
        np.testing.assert_array_equal(buffer.sample([np.random.default_rng(9)] * 2, (5,))[name],
                                      copy.sample([np.random.default_rng(9)] * 2, (5,))[name])


def test_observations_that_are_not_frame_stacks_are_refused():
    buffer = ReplayBuffer(10, ObsSpec((3, 2, 4), "uint8", 1.0, frame_stack=2), 1, 1)
    obs = np.random.default_rng(0).integers(0, 2, (1, 1, 3, 2, 4), dtype=np.uint8)
    with pytest.raises(ValueError, match="not stacks of 2 frames"):
        buffer.add(obs, np.zeros((1, 1), np.int32), np.zeros((1, 1), np.float32), 1 - obs, np.zeros((1, 1), np.float32))


def allocated(buffer: ReplayBuffer) -> int:
    arrays = [*vars(buffer).values(), *(vars(buffer.frames).values() if buffer.frames else [])]
    return sum(a.nbytes for a in arrays if isinstance(a, np.ndarray))


@pytest.mark.parametrize("spec, n_envs", [(ATARI, 4), (ObsSpec((10, 10, 6), "uint8"), 2), (ObsSpec.vector(4), 1)])
def test_replay_bytes_are_what_the_buffer_allocates(spec, n_envs):
    buffer = ReplayBuffer(1000, spec, 2, n_envs)
    obs = np.zeros((2, n_envs, *spec.shape), np.uint8)
    zeros = np.zeros((2, n_envs), np.int32)
    buffer.add(obs, zeros, zeros.astype(np.float32), obs, zeros.astype(np.float32))
    assert allocated(buffer) == replay_bytes(1000, spec, 2, n_envs)


def test_atari_bytes_per_transition_before_and_after_frame_dedup():
    per_transition = replay_bytes(1_000_000, ATARI, 1, 8) / 1_000_000
    float32_pairs, uint8_pairs = 2 * 84 * 84 * 4 * 4 + 12, 2 * 84 * 84 * 4 + 12  # obs and next_obs rows
    assert 84 * 84 < per_transition < 84 * 84 + 20  # one grey frame, plus action, reward, done, indices
    assert uint8_pairs / per_transition > 7.9 and float32_pairs / per_transition > 31


def test_a_buffer_that_cannot_fit_is_refused_naming_buffer_size_bytes_needed_and_available():
    available = available_bytes()
    size = int(2 * available / (84 * 84)) + 1
    with pytest.raises(ConfigError) as error:
        ReplayBuffer(size, ATARI, 1, 8)
    message = str(error.value)
    assert message.startswith(f"buffer_size = {size}: ")
    assert f"{replay_bytes(size, ATARI, 1, 8):,} bytes" in message
    reported = int(message.split(" bytes (")[1].split("but ")[-1].replace(",", ""))
    assert 0.5 * available < reported < 1.5 * available  # memory available moves a little meanwhile
    assert f"at most {int(reported / (replay_bytes(size, ATARI, 1, 8) / size)):,} transitions fit" in message


def test_train_refuses_the_buffer_before_training():
    events = []
    with pytest.raises(ConfigError, match=r"buffer_size = 100000000000: the replay buffer needs [\d,]+ bytes"):
        train({"env_id": "MinAtar/Breakout-v1", "buffer_size": 10**11, "total_timesteps": 1000}, on_event=events.append)
    assert events == []
