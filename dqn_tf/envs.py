"""Vectorised gymnasium environments with same-step autoreset, one vector env per member.

Same-step autoreset, as Stable-Baselines3's VecEnvs do it: the step that ends an episode returns
the next episode's first observation, and its true final observation separately. So every vector
step is `n_envs` real transitions, a member's counter is `vector steps * n_envs`, and the members
of a population stay in lockstep: each trains, moves its target and evaluates at exactly the
steps of its solo run. A truncated episode bootstraps from its true final observation; a
terminated one does not.

Each member steps its own vector env, seeded with its own seed as its solo run's is, so no
member's resets depend on another's seed; a stopped member's env is closed and never stepped.

Observations are flat float32 vectors or uint8 images [H, W, C] (MinAtar, Atari: see
`pixel_envs`), kept uint8 all the way to replay and the network. Training envs may relabel
rewards and ends (Atari: clipped rewards, life loss is terminal); episode returns are the true
game scores whenever the env passes them in `info` ("score", "game_over").
"""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium.envs.classic_control.cartpole import CartPoleVectorEnv
from gymnasium.vector import AutoresetMode

from dqn_tf import pixel_envs
from dqn_tf.env_source import EnvSource
from dqn_tf.errors import ConfigError

pixel_envs.register()  # configs name MinAtar and Atari ids, so they are checked against the registry


class SameStepCartPole(CartPoleVectorEnv):
    """gymnasium's native CartPole vector env (same dynamics, same reset distribution, same RNG
    draws), resetting a sub-env in the step that ended it; gymnasium's resets on the next step."""

    metadata: ClassVar[dict[str, Any]] = {**CartPoleVectorEnv.metadata, "autoreset_mode": AutoresetMode.SAME_STEP}

    def step(self, action):
        # prev_done is never set on entry, so the parent resets nothing (and draws nothing).
        obs, reward, terminated, truncated, _ = super().step(action)
        done = terminated | truncated
        self.prev_done = np.zeros_like(done)
        if not done.any():
            return obs, reward, terminated, truncated, {}
        info = {"final_obs": obs, "_final_obs": done}
        self.state[:, done] = self.np_random.uniform(low=self.low, high=self.high, size=(4, done.sum()))
        self.steps[done] = 0
        return self.state.T.astype(np.float32), reward, terminated, truncated, info


def make_vector_env(env: str | EnvSource | Any, num_envs: int, training: bool = True) -> gym.vector.VectorEnv:
    """A vector env that autoresets in the same step: ale-py's C++ one for Atari (`training`
    selects training or evaluation preprocessing), CartPole's native one (much faster than
    Sync), else a SyncVectorEnv of made, wrapped and checked envs (`env_source`). `env`: an id,
    an `EnvSource` or a config (its `env_*` fields)."""
    source = EnvSource.of(env)
    spec = source.spec()
    if pixel_envs.is_atari(spec):
        source.refuse_customisation("Atari games run in ale-py's vector env with DQN's preprocessing")
        return pixel_envs.AtariVector(spec, num_envs, training)
    if spec.vector_entry_point == "gymnasium.envs.classic_control.cartpole:CartPoleVectorEnv" and not source.wrappers:
        source.check_kwargs(spec)
        kwargs = {**spec.kwargs, **source.kwargs}
        steps = kwargs.pop("max_episode_steps", spec.max_episode_steps)
        return SameStepCartPole(num_envs=num_envs, max_episode_steps=steps, **kwargs)
    return source.make_vector(spec, num_envs)


def is_image(space: gym.Space) -> bool:
    """uint8 [H, W, C] Box: the CNN's input (channels last, as TF's conv2d takes it)."""
    return isinstance(space, gym.spaces.Box) and len(space.shape) == 3 and space.dtype == np.uint8


def observation_dtype(space: gym.Space) -> type:
    """Images stay uint8 (4x less replay memory; the network scales them), vectors are float32."""
    return np.uint8 if is_image(space) else np.float32


def check_spaces(env_id: str, env: gym.vector.VectorEnv) -> tuple[tuple[int, ...], int]:
    """DQN needs a Discrete action space and flat Box or uint8 [H, W, C] image observations:
    (observation shape, n_actions)."""
    obs_space, act_space = env.single_observation_space, env.single_action_space
    if not isinstance(act_space, gym.spaces.Discrete):
        raise ConfigError(
            f"env_id = {env_id!r}: DQN needs a Discrete action space, got {type(act_space).__name__}"
        )
    flat = isinstance(obs_space, gym.spaces.Box) and len(obs_space.shape) == 1
    if not (flat or is_image(obs_space)):
        raise ConfigError(
            f"env_id = {env_id!r}: needs a flat Box observation space or uint8 images [height, "
            f"width, channels], got {obs_space}; flatten other shapes with env_wrappers: "
            "['gymnasium.wrappers:FlattenObservation']"
        )
    return tuple(int(n) for n in obs_space.shape), int(act_space.n)


def check_env(env: str | EnvSource | Any) -> tuple[tuple[int, ...], int]:
    """Fail fast, before TensorFlow starts, on envs DQN cannot train on (and on env code that
    cannot be imported or an env that cannot be made: a ConfigError naming the field)."""
    source = EnvSource.of(env)
    try:
        vector = make_vector_env(source, 1)
    except ConfigError:
        raise
    except Exception as error:  # noqa: BLE001 - the user's env may raise anything when made
        raise ConfigError(f"env_id = {source.env_id!r}: cannot make the env ({type(error).__name__}: {error})") from None
    try:
        return check_spaces(source.env_id, vector)
    finally:
        vector.close()


class Collector:
    """Steps every live member's vector env and keeps each member's finished episodes.

    Row r of every array is member `members[r]` (an index into the population's configs);
    `keep` drops the rows of stopped members.
    """

    def __init__(self, env: str | EnvSource | Any, n_envs: int, seeds: list[int]):
        self.members = list(range(len(seeds)))
        self.envs = [make_vector_env(env, n_envs, training=True) for _ in seeds]
        self.dtype = observation_dtype(self.envs[0].single_observation_space)
        self.obs = np.stack([env.reset(seed=seed)[0] for env, seed in zip(self.envs, seeds)]).astype(self.dtype, copy=False)
        self.returns = np.zeros((len(seeds), n_envs))
        self.lengths = np.zeros((len(seeds), n_envs), dtype=np.int64)
        self.episodes: list[list[dict[str, Any]]] = [[] for _ in seeds]  # by member, kept when it stops

    def step(self, actions: np.ndarray, step_after: int):
        """Step with `actions` [K, n]; returns (obs, rewards, next_obs, terminated), [K, n, ...].

        `next_obs` is the true next observation (the final one where an episode ended) and
        `terminated` excludes time limits, so truncated episodes bootstrap. `step_after` is the
        members' counter after this step, recorded with each finished episode: a whole game
        with its true score where the env relabels what training sees (`info` "score",
        "game_over").
        """
        obs = self.obs
        rows = [env.step(a) for env, a in zip(self.envs, actions)]
        self.obs = np.stack([row[0] for row in rows]).astype(self.dtype, copy=False)
        rewards = np.stack([row[1] for row in rows]).astype(np.float32)
        terminated = np.stack([row[2] for row in rows])
        done = terminated | np.stack([row[3] for row in rows])
        game_over, scores = done, rewards
        if "game_over" in rows[0][4]:  # every member's env is of one kind
            game_over = np.stack([row[4]["game_over"] for row in rows])
            scores = np.stack([row[4]["score"] for row in rows])
        self.returns += scores
        self.lengths += 1
        next_obs = self.obs
        if done.any():
            next_obs = self.obs.copy()
            for r, c in zip(*np.nonzero(done)):
                next_obs[r, c] = rows[r][4]["final_obs"][c]
            for r, c in zip(*np.nonzero(game_over)):  # a game over is always a done
                episodes = self.episodes[self.members[r]]
                episodes.append({"episode": len(episodes), "step": step_after,
                                 "return": float(self.returns[r, c]), "length": int(self.lengths[r, c])})
            self.returns[game_over] = 0.0
            self.lengths[game_over] = 0
        return obs, rewards, next_obs, terminated

    def keep(self, rows: list[int]) -> None:
        for r, env in enumerate(self.envs):
            if r not in rows:
                env.close()
        self.envs = [self.envs[r] for r in rows]
        self.members = [self.members[r] for r in rows]
        self.obs, self.returns, self.lengths = self.obs[rows], self.returns[rows], self.lengths[rows]

    def close(self) -> None:
        for env in self.envs:
            env.close()
