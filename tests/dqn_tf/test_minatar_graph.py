"""The in-graph MinAtar games against the installed `minatar` (1.0.15), the reference.

Whole trajectories, not single re-synced steps: both sides start from a reset and run hundreds
of steps through many episodes (autoreset carrying the last action, as minatar's reset does),
with minatar's RandomState replaced by a stand-in that hands it the very uniforms the graph
game reads (slot by slot, by call site), so every state field, observation, reward and terminal
flag must agree at every step. Then, with each side's own randomness (minatar's numpy
RandomState, the compiled loop's counter-based hash), the same fixed policy must give the same
episode return and length statistics.
"""

from __future__ import annotations

import functools
import sys

import numpy as np
import pytest
import tensorflow as tf
from minatar import Environment

from dqn_tf.config import COMPILED_ENV_IDS
from dqn_tf.counter_rng import ACT, RESET, uniform
from dqn_tf.graph_envs import graph_env
from dqn_tf.minatar_graph import MINATAR_GRAPH_ENV_IDS

GAMES = {"MinAtar/Breakout-v1": "breakout", "MinAtar/Freeway-v1": "freeway", "MinAtar/Asterix-v1": "asterix",
         "MinAtar/SpaceInvaders-v1": "space_invaders", "MinAtar/Seaquest-v1": "seaquest"}
# Where each game's draws sit in the graph's uniforms, by the minatar function that draws them.
RESET_SITES = {"breakout": {"reset": 0}, "freeway": {"_randomize_cars": 0}, "asterix": {}, "space_invaders": {},
               "seaquest": {}}
STEP_SITES = {"breakout": {"act": 0}, "freeway": {"act": 0, "_randomize_cars": 1},
              "asterix": {"act": 0, "_spawn_entity": 1}, "space_invaders": {"act": 0},
              "seaquest": {"act": 0, "_spawn_enemy": 1, "_spawn_diver": 4}}
# Random play's statistics: (probability of the policy's favourite action, which, episodes).
STATISTICS = {"breakout": (0.0, 0, 1000), "freeway": (0.8, 1, 40), "asterix": (0.0, 0, 500),
              "space_invaders": (0.0, 0, 300), "seaquest": (0.0, 0, 300)}


class InjectedDraws:
    """Stands in for minatar's numpy RandomState: a call takes the uniforms of the slots the
    graph game reads for that call site (the calling function) and converts them as it does."""

    def __init__(self) -> None:
        self.uniforms, self.sites, self.taken = np.zeros(0), {}, {}

    def load(self, uniforms: np.ndarray, sites: dict[str, int]) -> None:
        self.uniforms, self.sites, self.taken = uniforms.astype(np.float64), sites, {}

    def _take(self, count: int) -> np.ndarray:
        site = sys._getframe(2).f_code.co_name
        start = self.sites[site] + self.taken.get(site, 0)
        self.taken[site] = self.taken.get(site, 0) + count
        return self.uniforms[start:start + count]

    def rand(self, *size: int):
        u = self._take(size[0] if size else 1)
        return u if size else float(u[0])

    def randint(self, low: int, high: int | None = None, size: int | None = None):
        low, high = (0, low) if high is None else (low, high)
        values = low + np.floor(self._take(size or 1) * (high - low)).astype(int)
        return values if size else int(values[0])


def minatar_fields(game: str, env: Environment) -> dict[str, np.ndarray]:
    """minatar's game state in the graph game's field names."""
    inner = env.env
    shared = {"last_action": env.minimal_action_set().index(env.last_action), "terminal": int(inner.terminal)}
    if game == "breakout":
        return {**shared, "ball_x": inner.ball_x, "ball_y": inner.ball_y, "ball_dir": inner.ball_dir,
                "pos": inner.pos, "last_x": inner.last_x, "last_y": inner.last_y, "strike": int(inner.strike),
                "bricks": inner.brick_map.astype(int).ravel()}
    if game == "freeway":
        cars = np.array(inner.cars)
        assert (cars[:, 1] == np.arange(1, 9)).all()  # lanes never change
        return {**shared, "pos": inner.pos, "move_timer": inner.move_timer, "terminate_timer": inner.terminate_timer,
                "car_x": cars[:, 0], "car_timer": cars[:, 2], "car_speed": cars[:, 3]}
    if game == "asterix":
        rows = [e if e is not None else [0, 0, False, False] for e in inner.entities]
        names = ("player_x", "player_y", "spawn_speed", "spawn_timer", "move_speed", "move_timer", "ramp_timer",
                 "ramp_index")
        return {**shared, **{name: getattr(inner, name) for name in names},
                "alive": np.array([e is not None for e in inner.entities], int),
                "x": np.array([r[0] for r in rows]), "right": np.array([r[2] for r in rows], int),
                "gold": np.array([r[3] for r in rows], int)}
    if game == "space_invaders":
        names = ("pos", "alien_dir", "enemy_move_interval", "alien_move_timer", "alien_shot_timer", "ramp_index",
                 "shot_timer")
        return {**shared, **{name: getattr(inner, name) for name in names},
                **{name: getattr(inner, f"{name[:-1]}_map").astype(int).ravel()
                   for name in ("f_bullets", "e_bullets")}, "aliens": inner.alien_map.astype(int).ravel()}
    if game == "seaquest":
        from dqn_tf.minatar_graph.seaquest import CAPACITY, LISTS, SCALARS

        fields = {**shared, **{name: int(getattr(inner, name)) for name in SCALARS}}
        for kind, attribute in (("f_bullet", "f_bullets"), ("e_bullet", "e_bullets"), ("fish", "e_fish"),
                                ("esub", "e_subs"), ("diver", "divers")):
            entries = getattr(inner, attribute)
            assert len(entries) <= CAPACITY[kind], (kind, len(entries))
            padded = np.zeros((CAPACITY[kind], 1 + len(LISTS[kind])), int)
            for i, entry in enumerate(entries):
                padded[i] = [1, *(int(v) for v in entry)]
            fields.update({f"{kind}_{name}": padded[:, i] for i, name in enumerate(("alive", *LISTS[kind]))})
        return fields
    raise KeyError(game)


def scramble(game: str, env: Environment, rng: np.random.Generator) -> None:
    """Puts minatar's game in a random mid-game state that resets rarely reach (Breakout: a wall
    with holes, where the ball strikes twice in a row and passes into a brick, or no wall at all,
    which refills when the ball comes down)."""
    inner = env.env
    if game == "breakout":
        inner.brick_map = np.zeros((10, 10))
        inner.brick_map[1:4] = rng.random((3, 10)) < rng.choice([0.0, 0.4, 0.8])
        inner.ball_x, inner.ball_y, inner.ball_dir = (int(v) for v in rng.integers([0, 4, 0], [10, 9, 4]))
        inner.last_x, inner.last_y, inner.pos = inner.ball_x, inner.ball_y, int(rng.integers(10))
        return
    if game == "freeway":  # cars anywhere, a game near its end
        for car in inner.cars:
            car[0], car[2] = int(rng.integers(10)), int(rng.integers(abs(car[3]) + 1))
        inner.pos, inner.move_timer = int(rng.integers(1, 10)), int(rng.integers(4))
        inner.terminate_timer = int(rng.integers(0, 120))
        return
    if game == "asterix":  # entities in most rows, a ramp about to happen or well under way
        inner.entities = [[int(rng.integers(10)), i + 1, bool(rng.random() < 0.5), bool(rng.random() < 0.4)]
                          if rng.random() < 0.7 else None for i in range(8)]
        inner.spawn_speed, inner.move_speed = int(rng.integers(1, 11)), int(rng.integers(1, 6))
        inner.spawn_timer, inner.move_timer = int(rng.integers(inner.spawn_speed + 1)), int(rng.integers(inner.move_speed + 1))
        inner.ramp_timer, inner.ramp_index = int(rng.integers(-1, 5)), int(rng.integers(0, 12))
        return
    if game == "space_invaders":  # a thinned wave anywhere up to the cannon's row, bullets in flight
        inner.alien_map = np.zeros((10, 10))
        top, left = int(rng.integers(0, 7)), int(rng.integers(0, 5))
        inner.alien_map[top:top + 4, left:left + 6] = rng.random((4, 6)) < rng.choice([0.1, 0.5, 1.0])
        if not inner.alien_map.any():
            inner.alien_map[top, left] = 1
        inner.f_bullet_map, inner.e_bullet_map = ((rng.random((10, 10)) < 0.05).astype(float) for _ in range(2))
        inner.alien_dir, inner.pos = int(rng.choice([-1, 1])), int(rng.integers(10))
        inner.enemy_move_interval = int(rng.integers(6, 13))
        inner.alien_move_timer, inner.alien_shot_timer = int(rng.integers(0, 4)), int(rng.integers(0, 11))
        inner.shot_timer, inner.ramp_index = int(rng.integers(0, 6)), int(rng.integers(0, 6))
        return
    if game == "seaquest":  # a crowded sea, divers aboard, oxygen running out, the ramp under way
        side = lambda: bool(rng.random() < 0.5)
        rows = rng.permutation(np.arange(1, 9))
        inner.move_speed, inner.e_spawn_speed = int(rng.integers(2, 6)), int(rng.integers(1, 21))
        inner.e_fish = [[int(rng.integers(10)), int(y), side(), int(rng.integers(inner.move_speed + 1))] for y in rows[:3]]
        inner.e_subs = [[int(rng.integers(10)), int(y), side(), int(rng.integers(inner.move_speed + 1)),
                         int(rng.integers(11))] for y in rows[3:5]]
        inner.divers = [[int(rng.integers(10)), int(y), side(), int(rng.integers(6))] for y in rows[5:7]]
        inner.e_bullets = [[int(rng.integers(10)), int(rng.integers(1, 9)), side()] for _ in range(3)]
        inner.f_bullets = [[int(rng.integers(10)), int(rng.integers(0, 9)), side()]]
        inner.sub_x, inner.sub_y, inner.sub_or = int(rng.integers(1, 9)), int(rng.integers(0, 3)), side()
        inner.oxygen, inner.diver_count = int(rng.integers(0, 40)), int(rng.choice([0, 1, 5, 6]))
        inner.surface, inner.shot_timer = bool(rng.random() < 0.3), int(rng.integers(0, 6))
        inner.e_spawn_timer, inner.d_spawn_timer = int(rng.integers(0, 3)), int(rng.integers(0, 3))
        inner.ramp_index = int(rng.integers(0, 8))
        if rng.random() < 0.5:  # due now: a sub shot as it fires; two fish, a bullet, one cell
            c, row, sub_row = int(rng.integers(2, 8)), int(rows[7]), int(rows[6])
            inner.e_subs.append([c - 1, sub_row, True, 0, 0])
            inner.e_fish += [[c - 1, row, True, 0], [c + 1, row, False, 0]]
            inner.f_bullets = [[c - 1, row, True], [c - 1, sub_row, True]]
        return
    raise KeyError(game)


def draws(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """float32 uniforms on the loop's grid (multiples of 2**-24)."""
    return (rng.integers(0, 2**24, shape) * 2.0**-24).astype(np.float32)


@functools.cache
def compiled(env_id: str):
    genv = graph_env(env_id)

    def step(state, action, uniform):
        state, reward, terminated = genv.step(state, action, uniform)
        return state, reward, terminated, genv.observe(state)

    def restart(state, uniform):
        state = genv.restart(state, uniform)
        return state, genv.observe(state)

    return tf.function(step, jit_compile=True), tf.function(restart, jit_compile=True)


def tracking_policy(game: str, env: Environment, rng: np.random.Generator, n_actions: int) -> int:
    """Mostly follows the ball (Breakout) or goes up (Freeway), so games score and reach rare
    events; else random."""
    if game == "breakout" and rng.random() < 0.85:
        inner = env.env
        return 1 if inner.ball_x < inner.pos else 2 if inner.ball_x > inner.pos else 0
    if game == "freeway" and rng.random() < 0.7:
        return 1
    return int(rng.integers(n_actions))


@pytest.mark.parametrize("env_id", list(GAMES))
def test_whole_trajectories_equal_minatars_with_the_same_draws(env_id):
    game, genv = GAMES[env_id], graph_env(env_id)
    batch, steps = 8, 500
    rng = np.random.default_rng(11)
    step, restart = compiled(env_id)
    envs = [Environment(game, sticky_action_prob=0.1, difficulty_ramping=True) for _ in range(batch)]
    fakes = [InjectedDraws() for _ in range(batch)]
    for env, fake in zip(envs, fakes):
        env.random = env.env.random = fake
    first = draws(rng, (batch, genv.reset_draws))
    for env, fake, u in zip(envs, fakes, first):
        fake.load(u, RESET_SITES[game])
        env.reset()
    state = genv.initial_state(tf.constant(first, tf.float64))
    scrambled = np.arange(batch) % 2 == 1  # these start, and restart, from random mid-game states

    def rescramble(state, which):
        for b in np.nonzero(which)[0]:
            scramble(game, envs[b], rng)
        fields = [minatar_fields(game, env) for env in envs]
        packed = genv.pack({name: tf.constant(np.stack([f[name] for f in fields])) for name in fields[0]})
        return tf.where(which[:, None], packed, state)

    state = rescramble(state, scrambled)
    rewards_seen, ends = 0.0, 0

    def check(state, obs, when):
        fields = {name: value.numpy() for name, value in genv.unpack(state).items()}
        theirs = [minatar_fields(game, env) for env in envs]
        for name in theirs[0]:
            np.testing.assert_array_equal(fields[name], np.stack([f[name] for f in theirs]), err_msg=f"{name}, {when}")
        np.testing.assert_array_equal(obs, np.stack([env.state() for env in envs]).astype(np.uint8), err_msg=when)

    check(state, genv.observe(state).numpy(), "reset")
    for t in range(steps):
        actions = np.array([tracking_policy(game, env, rng, genv.n_actions) for env in envs], np.int32)
        u = draws(rng, (batch, genv.step_draws))
        want = []
        for env, fake, a, ub in zip(envs, fakes, actions, u):
            fake.load(ub, STEP_SITES[game])
            want.append(env.act(env.minimal_action_set()[a]))
        state, reward, terminated, obs = step(state, tf.constant(actions), tf.constant(u))
        np.testing.assert_array_equal(reward.numpy(), [r for r, _ in want], err_msg=f"reward at step {t}")
        np.testing.assert_array_equal(terminated.numpy(), [d for _, d in want], err_msg=f"terminal at step {t}")
        check(state, obs.numpy(), f"step {t}")
        rewards_seen += reward.numpy().sum()
        done = terminated.numpy()
        if done.any():  # both reset the ended games; the graph keeps the last action as minatar does
            ends += int(done.sum())
            u = draws(rng, (batch, genv.reset_draws))
            for b in np.nonzero(done)[0]:
                fakes[b].load(u[b], RESET_SITES[game])
                envs[b].reset()
            fresh, fresh_obs = restart(state, tf.constant(u, tf.float64))
            state = tf.where(done[:, None], fresh, state)
            check(state, tf.where(done[:, None, None, None], fresh_obs, obs).numpy(), f"reset after step {t}")
            state = rescramble(state, done & scrambled)
    assert ends >= 10 and rewards_seen >= 20  # many episodes, and points scored in them


def graph_random_play(env_id: str, episodes: int, key: int) -> tuple[np.ndarray, np.ndarray]:
    """Returns and lengths of `episodes` games of the game's fixed random policy (`STATISTICS`),
    all draws from the compiled loop's counter-based hash (stream, step), one XLA program."""
    genv = graph_env(env_id)
    favourite, action = STATISTICS[GAMES[env_id]][:2]

    @tf.function(jit_compile=True)
    def play():
        keys = tf.constant([key], tf.uint32)
        state = genv.initial_state(uniform(keys, RESET, [-1], [episodes, genv.reset_draws], tf.float64)[0])

        def body(t, state, running, returns, lengths):
            draws = uniform(keys, ACT, [t], [episodes, 2 + genv.step_draws])[0]
            actions = tf.minimum(tf.cast(draws[:, 0] * genv.n_actions, tf.int32), genv.n_actions - 1)
            actions = tf.where(draws[:, 1] < favourite, action, actions)
            state, reward, terminated = genv.step(state, actions, draws[:, 2:])
            returns += tf.where(running, reward, 0.0)
            lengths += tf.cast(running, tf.int32)
            return t + 1, state, running & ~terminated, returns, lengths

        *_, returns, lengths = tf.while_loop(
            lambda t, s, running, r, n: tf.reduce_any(running), body,
            [tf.constant(0, tf.int64), state, tf.ones([episodes], tf.bool), tf.zeros([episodes]),
             tf.zeros([episodes], tf.int32)])
        return returns, lengths

    returns, lengths = play()
    return returns.numpy(), lengths.numpy()


def minatar_random_play(game: str, episodes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    env = Environment(game, sticky_action_prob=0.1, difficulty_ramping=True)
    env.seed(seed)
    rng = np.random.default_rng(seed)
    actions = env.minimal_action_set()
    favourite, action = STATISTICS[game][:2]
    returns, lengths = np.zeros(episodes), np.zeros(episodes)
    for e in range(episodes):
        env.reset()
        terminal = False
        while not terminal:
            a = action if rng.random() < favourite else rng.integers(len(actions))
            reward, terminal = env.act(actions[a])
            returns[e] += reward
            lengths[e] += 1
    return returns, lengths


@pytest.mark.parametrize("env_id", list(GAMES))
def test_random_play_statistics_agree_with_minatars(env_id):
    """The same fixed random policy, each side with its own randomness: mean return and mean
    length within 4 standard errors of the difference (equal, where they cannot vary)."""
    episodes = STATISTICS[GAMES[env_id]][2]
    ours = graph_random_play(env_id, episodes, key=5)
    theirs = minatar_random_play(GAMES[env_id], episodes, seed=6)
    assert ours[0].std() > 0 and theirs[0].std() > 0  # returns vary: the test can tell them apart
    for name, a, b in zip(("return", "length"), ours, theirs):
        se = np.sqrt(a.var() / len(a) + b.var() / len(b))
        assert abs(a.mean() - b.mean()) <= 4 * se, (name, a.mean(), b.mean(), se)


def test_every_game_with_an_in_graph_version_is_listed():
    assert set(MINATAR_GRAPH_ENV_IDS) == set(GAMES) and set(GAMES) <= set(COMPILED_ENV_IDS)
    assert graph_env("MinAtar/Pong-v1") is None and graph_env("MinAtar/Breakout-v0") is None
