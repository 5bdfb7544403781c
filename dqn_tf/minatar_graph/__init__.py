"""The MinAtar games (Young & Tian 2019; minatar 1.0.15) as in-graph envs for the compiled loop:
pure functions over any leading dims (members x envs), with minatar's rules: sticky actions
(0.1), difficulty ramping where minatar ramps, minimal action sets, its spawn randomness drawn
from the loop's counter-based uniforms. `tests/dqn_tf/test_minatar_graph.py` steps each against
the installed `minatar` along whole trajectories with the same draws.
"""

from __future__ import annotations

from dqn_tf.minatar_graph.asterix import Asterix
from dqn_tf.minatar_graph.breakout import Breakout
from dqn_tf.minatar_graph.freeway import Freeway
from dqn_tf.minatar_graph.game import SIDE, MinAtarGame
from dqn_tf.minatar_graph.seaquest import Seaquest
from dqn_tf.minatar_graph.space_invaders import SpaceInvaders
from dqn_tf.pixel_envs import MINATAR_MAX_EPISODE_STEPS

# MinAtar/<Game>-v1 -> (game class, minimal action count, reset draws)
GAMES: dict[str, tuple[type[MinAtarGame], int, int]] = {
    "Breakout": (Breakout, 3, 1),
    "Freeway": (Freeway, 3, 16),
    "Asterix": (Asterix, 5, 0),
    "SpaceInvaders": (SpaceInvaders, 4, 0),
    "Seaquest": (Seaquest, 6, 0),
}
MINATAR_GRAPH_ENV_IDS = tuple(f"MinAtar/{name}-v1" for name in GAMES)


def minatar_graph_env(env_id: str) -> MinAtarGame | None:
    """The in-graph game for a MinAtar/<Game>-v1 id, or None where there is none (yet)."""
    name = env_id.removeprefix("MinAtar/").removesuffix("-v1")
    if env_id != f"MinAtar/{name}-v1" or name not in GAMES:
        return None
    game, n_actions, reset_draws = GAMES[name]
    return game(env_id, obs_dim=SIDE * SIDE * game.CHANNELS, n_actions=n_actions, state_dim=game.size(),
                max_episode_steps=MINATAR_MAX_EPISODE_STEPS, reset_draws=reset_draws)
