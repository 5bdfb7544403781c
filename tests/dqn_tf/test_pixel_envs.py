"""Pixel envs: MinAtar ids, Atari preprocessing, training vs evaluation signals, same-step
autoreset with true final observations, and true game scores in the episodes table."""

import functools

import gymnasium as gym
import numpy as np
import pytest

from dqn_tf.envs import Collector, check_env, make_vector_env
from dqn_tf.errors import ConfigError
from dqn_tf.observations import ObsSpec
from dqn_tf.pixel_envs import MINATAR_GAMES, AtariVector

MINATAR_CHANNELS = {"Asterix": 4, "Breakout": 4, "Freeway": 7, "Seaquest": 10, "SpaceInvaders": 6}


@pytest.mark.parametrize("name", sorted(MINATAR_GAMES))
def test_every_minatar_game_is_registered_with_uint8_channels_last_images(name):
    env_id = f"MinAtar/{name}-v1"
    assert check_env(env_id) == ((10, 10, MINATAR_CHANNELS[name]), gym.make(env_id).action_space.n)
    env = make_vector_env(env_id, 2)
    obs, _ = env.reset(seed=0)
    assert obs.dtype == np.uint8 and obs.shape == (2, 10, 10, MINATAR_CHANNELS[name])
    assert set(np.unique(obs)) <= {0, 1} and obs.any()
    assert ObsSpec.of(env) == ObsSpec((10, 10, MINATAR_CHANNELS[name]), "uint8", 1.0)  # 0/1 channels, no stack


def test_minatar_is_seeded_through_gymnasium_and_autoresets_in_the_same_step():
    """Same seed, same actions: the same games (sticky actions and spawns included); the step that
    ends a game returns the next game's first frame and the true last one as final_obs."""
    first, second = make_vector_env("MinAtar/Breakout-v1", 2), make_vector_env("MinAtar/Breakout-v1", 2)
    obs, _ = first.reset(seed=4)
    np.testing.assert_array_equal(obs, second.reset(seed=4)[0])
    rng, ends = np.random.default_rng(0), 0
    for _ in range(400):
        actions = rng.integers(0, 3, size=2)
        previous = obs
        obs, rewards, terminated, _, info = first.step(actions)
        other = second.step(actions)
        np.testing.assert_array_equal(obs, other[0])
        np.testing.assert_array_equal(rewards, other[1])
        for c in np.nonzero(terminated)[0]:
            ends += 1
            assert obs[c][..., 3].sum() == 30  # a new game: 3 full rows of bricks
            assert info["final_obs"][c][9, :, 1].any()  # the lost game's last frame: ball (channel 1) at the bottom
            assert not np.array_equal(info["final_obs"][c], previous[c])
    assert ends > 0


def test_atari_observations_are_84x84x4_uint8_stacked_in_the_last_axis():
    assert check_env("ALE/Pong-v5") == ((84, 84, 4), 6)
    assert check_env("PongNoFrameskip-v4") == ((84, 84, 4), 6)
    env = make_vector_env("PongNoFrameskip-v4", 2)
    assert isinstance(env, AtariVector)
    assert ObsSpec.of(env) == ObsSpec((84, 84, 4), "uint8", 1 / 255, frame_stack=4)  # what replay and CNN see
    obs, _ = env.reset(seed=1)
    assert obs.dtype == np.uint8 and obs.shape == (2, 84, 84, 4) and obs.flags.c_contiguous
    for _ in range(5):
        previous = obs
        obs, *_ = env.step(np.zeros(2, dtype=np.int64))
        np.testing.assert_array_equal(obs[..., :3], previous[..., 1:])  # newest frame last
    assert obs.std() > 0  # a grayscale picture, not a blank


@functools.cache
def play(env_id: str, training: bool, steps: int, seed: int = 3) -> list[dict]:
    """Steps one env with a fixed stream of random actions; every step's outputs (cached: the
    tests only read them)."""
    env = make_vector_env(env_id, 1, training=training)
    obs, info = env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(steps):
        previous, lives = obs, info["lives"][0]
        obs, reward, terminated, truncated, info = env.step(rng.integers(0, env.single_action_space.n, size=1))
        out.append({"previous": previous[0], "obs": obs[0], "reward": reward[0], "terminated": terminated[0],
                    "truncated": truncated[0], "lives_before": lives, "info": info})
    return out


def test_training_clips_rewards_and_ends_at_a_life_loss_on_the_same_game_evaluation_plays_whole():
    """One game, two views: the training env's observations are the evaluation env's step for
    step; training sees sign(reward) and a terminal at each life loss, evaluation the raw score
    and a terminal only at game over; the raw score travels in the training env's info."""
    env_id, steps = "SpaceInvadersNoFrameskip-v4", 900  # rewards of 5-30 points, 3 lives, 2 games
    life_losses = clipped = games = 0
    for train, true in zip(play(env_id, True, steps), play(env_id, False, steps)):
        np.testing.assert_array_equal(train["obs"], true["obs"])
        assert train["info"]["score"][0] == true["reward"] and train["reward"] == np.sign(true["reward"])
        game_over = true["terminated"] or true["truncated"]
        assert train["info"]["game_over"][0] == game_over
        lost = train["info"]["lives"][0] < train["lives_before"] and not game_over
        assert train["terminated"] == (true["terminated"] or lost)
        life_losses, clipped, games = life_losses + lost, clipped + (true["reward"] > 1), games + game_over
    assert clipped > 0 and life_losses >= 4 and games >= 2


def test_atari_final_obs_is_the_true_last_frame_stack_at_life_loss_and_game_over():
    """Same-step autoreset: at a game over, obs is the next game's first stack and final_obs the
    last stack of the game that ended (it continues the previous stack); at a life loss the
    game goes on, so final_obs is the next observation itself."""
    seen = {"life": 0, "game": 0}
    for step in play("BreakoutNoFrameskip-v4", True, 500, seed=5):
        info, previous = step["info"], step["previous"]
        assert info["_final_obs"][0] == (step["terminated"] or step["truncated"])
        if not info["_final_obs"][0]:
            continue
        final = info["final_obs"][0]
        np.testing.assert_array_equal(final[..., :3], previous[..., 1:])
        if info["game_over"][0]:
            seen["game"] += 1
            assert not np.array_equal(step["obs"][..., :3], previous[..., 1:])  # a new game's stack
        else:
            seen["life"] += 1
            np.testing.assert_array_equal(final, step["obs"])
    assert seen["life"] >= 4 and seen["game"] >= 2


def test_collector_keeps_uint8_and_records_true_game_scores_as_episodes():
    """Training relabels rewards and ends, yet the episodes table holds whole games with their
    raw scores: the same returns and lengths as an evaluation env playing the same actions."""
    env_id, steps, seed = "SpaceInvadersNoFrameskip-v4", 900, 3
    collector = Collector(env_id, 1, [seed])
    assert collector.obs.dtype == np.uint8
    rng = np.random.default_rng(seed)
    terminals = 0
    for t in range(steps):
        obs, rewards, next_obs, terminated = collector.step(rng.integers(0, 6, size=(1, 1)), t + 1)
        assert obs.dtype == next_obs.dtype == np.uint8 and set(np.unique(rewards)) <= {-1.0, 0.0, 1.0}
        terminals += int(terminated.sum())
    games, length, score = [], 0, 0.0
    for step in play(env_id, False, steps, seed):
        length, score = length + 1, score + step["reward"]
        if step["terminated"] or step["truncated"]:
            games.append((score, length))
            length, score = 0, 0.0
    assert [(e["return"], e["length"]) for e in collector.episodes[0]] == games
    assert games and max(score for score, _ in games) > 3 * len(games)  # raw points, not clipped ones
    assert terminals > len(games)  # life losses end training episodes too


def test_check_env_refuses_images_that_are_not_uint8_naming_the_env():
    env_id = "MinAtarBool/Breakout-v0"
    if env_id not in gym.registry:  # minatar's own gym env: bool images
        gym.register(env_id, entry_point="minatar.gym:BaseEnv", kwargs={"game": "breakout"})
    with pytest.raises(ConfigError, match=r"env_id = 'MinAtarBool/Breakout-v0': needs a flat Box "
                                          r"observation space or uint8 images \[height, width, channels\]"):
        check_env(env_id)
