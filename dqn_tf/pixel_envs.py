"""Pixel games for DQN, as uint8 images channels-last [H, W, C] (what TF's conv2d takes).

Atari: the standard DQN preprocessing as Stable-Baselines3's AtariWrapper does it (up to 30
no-ops on reset, frame skip 4 with a max over the last 2 frames, 84x84 grayscale, 4 stacked
frames, FIRE on reset where the game needs it), done in C++ threads by ale-py's own vector env,
which also resets a finished game in the same step and returns its last observation as
`final_obs`, as our Collector needs. The game is never changed for training: a training env
only relabels what DQN learns from (a life loss is terminal, rewards are clipped to their sign)
and passes the raw reward and the real game over in `info` ("score", "game_over"), so episode
returns are true game scores, comparable with evaluation, which sees full games and raw rewards.

MinAtar: the five games of Young & Tian (2019) as `MinAtar/<Game>-v1` (minimal action sets, as
minatar's own ids), [10, 10, C] observations of 0/1 uint8 channels, no frame stack (each game
encodes motion in its channels), the paper's sticky actions (0.1) and difficulty ramping.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode

ATARI_ENTRY_POINT = "ale_py.env:AtariEnv"
ATARI_FRAMES_PER_EPISODE = 108_000  # ALE's cap: 30 minutes of play, 27,000 steps at frame skip 4
MINATAR_GAMES = {"Asterix": "asterix", "Breakout": "breakout", "Freeway": "freeway",
                 "Seaquest": "seaquest", "SpaceInvaders": "space_invaders"}
# MinAtar games have no time limit and a good Breakout player never loses; capped at Atari's
# 27,000 steps so a greedy evaluation always ends.
MINATAR_MAX_EPISODE_STEPS = 27_000


def register() -> None:
    """Make the Atari ids (ale-py registers them on import) and the MinAtar ids known to
    gymnasium, so configs can name them. Idempotent; constructs no env and imports no game."""
    import ale_py

    gym.register_envs(ale_py)
    for name, game in MINATAR_GAMES.items():
        if f"MinAtar/{name}-v1" not in gym.registry:
            gym.register(f"MinAtar/{name}-v1", entry_point="dqn_tf.pixel_envs:MinAtarEnv",
                         kwargs={"game": game}, max_episode_steps=MINATAR_MAX_EPISODE_STEPS)


def is_atari(spec: gym.envs.registration.EnvSpec) -> bool:
    return spec.entry_point == ATARI_ENTRY_POINT


class MinAtarEnv(gym.Env):
    """A MinAtar game with uint8 observations and gymnasium seeding.

    minatar's own gym env (`minatar.gym`) gives bool observations, which no conv layer takes, and
    is not registered unless asked; this one keeps its game, actions and RNG use."""

    metadata: ClassVar[dict[str, Any]] = {"render_modes": []}

    def __init__(self, game: str, sticky_action_prob: float = 0.1, difficulty_ramping: bool = True):
        from minatar import Environment  # imports matplotlib: only when a MinAtar env is made

        self.game = Environment(game, sticky_action_prob=sticky_action_prob,
                                difficulty_ramping=difficulty_ramping)
        self.action_set = self.game.minimal_action_set()
        self.action_space = gym.spaces.Discrete(len(self.action_set))
        self.observation_space = gym.spaces.Box(0, 1, self.game.state_shape(), np.uint8)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        if seed is not None:
            self.game.seed(seed)  # the game's sticky actions and spawns draw from its own RNG
        self.game.reset()
        return self.game.state().astype(np.uint8), {}

    def step(self, action):
        reward, terminated = self.game.act(self.action_set[int(action)])
        return self.game.state().astype(np.uint8), float(reward), bool(terminated), False, {}


class AtariVector(gym.vector.VectorEnv):
    """ale-py's C++ `AtariVectorEnv` with DQN preprocessing, channels-last, same-step autoreset.

    With `training`, a life loss ends the training episode (the game goes on: its next
    observation is also its `final_obs`) and rewards are clipped to -1/0/1; `info["score"]` holds
    the raw rewards and `info["game_over"]` the real ends of games.
    """

    frame_stack = 4  # frames on the last axis, oldest first (the replay stores each frame once)

    def __init__(self, spec: gym.envs.registration.EnvSpec, num_envs: int, training: bool):
        from ale_py.vector_env import AtariVectorEnv

        kwargs = spec.kwargs
        self.env = AtariVectorEnv(
            kwargs["game"], num_envs, autoreset_mode=AutoresetMode.SAME_STEP,
            # ale-py's default counts the host's cores; a pinned run (taskset, Slurm) has fewer
            num_threads=min(num_envs, usable_cores()),
            # the id's sticky actions, action set and episode cap; frame skip is always 4
            repeat_action_probability=kwargs.get("repeat_action_probability", 0.0),
            full_action_space=kwargs.get("full_action_space", False),
            max_num_frames_per_episode=kwargs.get("max_num_frames_per_episode") or ATARI_FRAMES_PER_EPISODE,
            frameskip=4, maxpool=True, noop_max=30, img_height=84, img_width=84, grayscale=True,
            stack_num=self.frame_stack, use_fire_reset=True,
            episodic_life=False, reward_clipping=False,  # relabelled here, so true scores survive
        )
        self.training = training
        self.num_envs = num_envs
        self.metadata = {"autoreset_mode": AutoresetMode.SAME_STEP}
        self.single_action_space = self.env.single_action_space
        self.action_space = self.env.action_space
        self.single_observation_space = gym.spaces.Box(0, 255, (84, 84, self.frame_stack), np.uint8)
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, num_envs)
        self.lives = np.zeros(num_envs, dtype=np.int32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        self.lives = info["lives"].copy()
        return channels_last(obs), info

    def step(self, actions: np.ndarray):
        obs, rewards, terminated, truncated, info = self.env.step(np.asarray(actions, dtype=np.int64))
        obs = channels_last(obs)
        game_over = terminated | truncated
        if "final_obs" in info:  # ale-py sends it on steps where some game ended
            info["final_obs"] = channels_last(info["final_obs"])
        if self.training:
            lost_life = (info["lives"] < self.lives) & ~game_over
            info["score"], info["game_over"] = rewards.astype(np.float64), game_over
            rewards, terminated = np.sign(rewards), terminated | lost_life
            if lost_life.any():
                final = info.get("final_obs", obs).copy()
                final[lost_life] = obs[lost_life]
                info["final_obs"] = final
        self.lives = info["lives"].copy()
        info["_final_obs"] = terminated | truncated
        return obs, rewards.astype(np.float64), terminated, truncated, info

    def close_extras(self, **kwargs: Any) -> None:
        self.env.close()


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def channels_last(obs: np.ndarray) -> np.ndarray:
    """[N, stack, H, W] (ale-py's layout) -> [N, H, W, stack] (conv2d's), contiguous."""
    return np.ascontiguousarray(np.moveaxis(obs, 1, -1))
