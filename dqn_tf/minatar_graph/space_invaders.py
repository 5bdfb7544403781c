"""MinAtar SpaceInvaders (minatar 1.0.15, `environments/space_invaders.py`) in the graph.

The cannon (bottom row) moves and fires upwards (a cooldown of 5 steps); a block of aliens
steps sideways every `alien_move_timer` steps (sooner as fewer remain), and down a row and back
at an edge; every 10 steps the alien nearest the cannon (by column, ties to the left) fires
down. A hit scores 1 per alien; an alien bullet or an alien reaching the cannon ends the game.
A cleared wave comes back, and the aliens speed up (difficulty ramp). No draws but the sticky
action.
"""

from __future__ import annotations

import tensorflow as tf

from dqn_tf.minatar_graph.game import SIDE, Fields, MinAtarGame, cell

SHOT_COOL_DOWN, ENEMY_MOVE_INTERVAL, ENEMY_SHOT_INTERVAL = 5, 12, 10
LEFT, RIGHT, FIRE = 1, 2, 3  # minimal action set: n, l, r, f


def _grid(flat: tf.Tensor) -> tf.Tensor:
    return tf.reshape(flat, tf.concat([tf.shape(flat)[:-1], [SIDE, SIDE]], axis=0))


def _flat(grid: tf.Tensor) -> tf.Tensor:
    return tf.reshape(grid, tf.concat([tf.shape(grid)[:-2], [SIDE * SIDE]], axis=0))


def _wave(shape: tf.Tensor) -> tf.Tensor:
    """The aliens' starting block, rows 0..3 x columns 2..7, as a flat map."""
    y, x = tf.range(SIDE * SIDE) // SIDE, tf.range(SIDE * SIDE) % SIDE
    block = tf.cast((y < 4) & (x >= 2) & (x < 8), tf.int32)
    return tf.broadcast_to(block, tf.concat([shape, [SIDE * SIDE]], axis=0))


def _shift_rows(grid: tf.Tensor, by: int) -> tf.Tensor:
    """np.roll(grid, by, axis=0) then clearing the row that came round (by = +-1)."""
    rolled = tf.roll(grid, by, axis=-2)
    row = tf.range(SIDE)[:, None]
    return tf.where(row == (0 if by > 0 else SIDE - 1), 0, rolled)


class SpaceInvaders(MinAtarGame):
    CHANNELS = 6  # cannon, alien, alien moving left, alien moving right, friendly bullet, enemy bullet
    FIELDS = (("pos", 1), ("alien_dir", 1), ("enemy_move_interval", 1), ("alien_move_timer", 1),
              ("alien_shot_timer", 1), ("ramp_index", 1), ("shot_timer", 1), ("f_bullets", SIDE * SIDE),
              ("e_bullets", SIDE * SIDE), ("aliens", SIDE * SIDE))
    step_draws = 1  # the sticky action only

    def start(self, uniform: tf.Tensor) -> Fields:
        shape = tf.shape(uniform)[:-1]
        full = lambda value: tf.fill(shape, value)
        empty = tf.zeros(tf.concat([shape, [SIDE * SIDE]], axis=0), tf.int32)
        return {"pos": full(5), "alien_dir": full(-1), "enemy_move_interval": full(ENEMY_MOVE_INTERVAL),
                "alien_move_timer": full(ENEMY_MOVE_INTERVAL), "alien_shot_timer": full(ENEMY_SHOT_INTERVAL),
                "ramp_index": full(0), "shot_timer": full(0), "f_bullets": empty, "e_bullets": empty,
                "aliens": _wave(shape)}

    def act(self, fields: Fields, action: tf.Tensor, uniform: tf.Tensor) -> tuple[Fields, tf.Tensor]:
        del uniform
        pos, shot_timer = fields["pos"], fields["shot_timer"]
        fire = (action == FIRE) & (shot_timer == 0)
        f_bullets = _grid(tf.maximum(fields["f_bullets"], cell(tf.fill(tf.shape(pos), 9), pos) * tf.cast(fire, tf.int32)[..., None]))
        shot_timer = tf.where(fire, SHOT_COOL_DOWN, shot_timer)
        pos = tf.where(action == LEFT, tf.maximum(pos - 1, 0), tf.where(action == RIGHT, tf.minimum(pos + 1, 9), pos))
        f_bullets = _shift_rows(f_bullets, -1)  # up
        e_bullets = _shift_rows(_grid(fields["e_bullets"]), 1)  # down
        aliens = _grid(fields["aliens"])
        at_cannon = lambda grid: tf.reduce_sum(grid[..., 9, :] * tf.one_hot(pos, SIDE, dtype=tf.int32), axis=-1) > 0
        dead = at_cannon(e_bullets) | at_cannon(aliens)
        # the aliens step: sideways, or down a row and turn at an edge
        moving = fields["alien_move_timer"] == 0
        count = tf.reduce_sum(aliens, axis=[-2, -1])
        alien_move_timer = tf.where(moving, tf.minimum(count, fields["enemy_move_interval"]),
                                    fields["alien_move_timer"])
        alien_dir = fields["alien_dir"]
        columns = tf.reduce_sum(aliens, axis=-2)  # [..., 10]
        at_edge = ((columns[..., 0] > 0) & (alien_dir < 0)) | ((columns[..., 9] > 0) & (alien_dir > 0))
        turn = moving & at_edge
        dead |= turn & (tf.reduce_sum(aliens[..., 9, :], axis=-1) > 0)
        down = tf.roll(aliens, 1, axis=-2)
        sideways = tf.where((alien_dir > 0)[..., None, None], tf.roll(aliens, 1, axis=-1), tf.roll(aliens, -1, axis=-1))
        aliens = tf.where(turn[..., None, None], down, tf.where(moving[..., None, None], sideways, aliens))
        alien_dir = tf.where(turn, -alien_dir, alien_dir)
        dead |= moving & at_cannon(aliens)
        # the nearest alien fires
        shooting = fields["alien_shot_timer"] == 0
        alien_shot_timer = tf.where(shooting, ENEMY_SHOT_INTERVAL, fields["alien_shot_timer"])
        columns = tf.reduce_sum(aliens, axis=-2)
        column = tf.range(SIDE)
        distance = 2 * tf.abs(column - pos[..., None]) + tf.cast(column > pos[..., None], tf.int32)  # ties: left first
        nearest = tf.argmin(tf.where(columns > 0, distance, 10 * SIDE), axis=-1, output_type=tf.int32)
        in_column = tf.reduce_sum(aliens * tf.one_hot(nearest, SIDE, dtype=tf.int32)[..., None, :], axis=-1)  # [..., 10]
        lowest = SIDE - 1 - tf.argmax(tf.reverse(in_column, axis=[-1]), axis=-1, output_type=tf.int32)
        shot = _grid(cell(lowest, nearest)) * tf.cast(shooting, tf.int32)[..., None, None]
        e_bullets = tf.maximum(e_bullets, shot)
        # friendly bullets kill the aliens they meet
        kills = aliens * f_bullets
        reward = tf.reduce_sum(kills, axis=[-2, -1])
        aliens, f_bullets = aliens - kills, f_bullets - kills
        # a cleared wave comes back, faster
        cleared = tf.reduce_sum(aliens, axis=[-2, -1]) == 0
        faster = cleared & (fields["enemy_move_interval"] > 6)
        aliens = tf.where(cleared[..., None], _wave(tf.shape(pos)), _flat(aliens))
        moved = {"pos": pos, "alien_dir": alien_dir, "shot_timer": shot_timer - tf.cast(shot_timer > 0, tf.int32),
                 "enemy_move_interval": fields["enemy_move_interval"] - tf.cast(faster, tf.int32),
                 "ramp_index": fields["ramp_index"] + tf.cast(faster, tf.int32),
                 "alien_move_timer": alien_move_timer - 1, "alien_shot_timer": alien_shot_timer - 1,
                 "f_bullets": _flat(f_bullets), "e_bullets": _flat(e_bullets), "aliens": aliens,
                 "terminal": tf.cast(dead, tf.int32)}
        return moved, reward

    def channels(self, fields: Fields) -> list[tf.Tensor]:
        aliens, left = fields["aliens"], tf.cast(fields["alien_dir"] < 0, tf.int32)[..., None]
        nine = tf.fill(tf.shape(fields["pos"]), 9)
        return [cell(nine, fields["pos"]), aliens, aliens * left, aliens * (1 - left), fields["f_bullets"],
                fields["e_bullets"]]
