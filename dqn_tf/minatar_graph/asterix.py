"""MinAtar Asterix (minatar 1.0.15, `environments/asterix.py`) in the graph.

The player moves in rows 1..8; enemies and gold cross the rows (one slot per row) from either
side. Touching gold scores 1 and removes it; touching an enemy ends the game. Every
`spawn_speed` steps an entity spawns in a random free row, side and kind; entities move every
`move_speed` steps. Difficulty ramps: every 100 steps spawning speeds up, and every second ramp
movement too. Draws per step (after the sticky one): side, gold or not, which free row.
"""

from __future__ import annotations

import tensorflow as tf

from dqn_tf.minatar_graph.game import Fields, MinAtarGame, cell, randint

RAMP_INTERVAL, INIT_SPAWN_SPEED, INIT_MOVE_INTERVAL, SLOTS = 100, 10, 5, 8
LEFT, UP, RIGHT, DOWN = 1, 2, 3, 4  # minimal action set: n, l, u, r, d


class Asterix(MinAtarGame):
    CHANNELS = 4  # player, enemy, trail, gold
    FIELDS = (("player_x", 1), ("player_y", 1), ("spawn_speed", 1), ("spawn_timer", 1), ("move_speed", 1),
              ("move_timer", 1), ("ramp_timer", 1), ("ramp_index", 1), ("alive", SLOTS), ("x", SLOTS),
              ("right", SLOTS), ("gold", SLOTS))
    step_draws = 4  # sticky, then a spawn's side, kind and row

    def start(self, uniform: tf.Tensor) -> Fields:
        shape = tf.shape(uniform)[:-1]
        full = lambda value: tf.fill(shape, value)
        empty = tf.zeros(tf.concat([shape, [SLOTS]], axis=0), tf.int32)
        return {"player_x": full(5), "player_y": full(5), "spawn_speed": full(INIT_SPAWN_SPEED),
                "spawn_timer": full(INIT_SPAWN_SPEED), "move_speed": full(INIT_MOVE_INTERVAL),
                "move_timer": full(INIT_MOVE_INTERVAL), "ramp_timer": full(RAMP_INTERVAL), "ramp_index": full(0),
                "alive": empty, "x": empty, "right": empty, "gold": empty}

    def act(self, fields: Fields, action: tf.Tensor, uniform: tf.Tensor) -> tuple[Fields, tf.Tensor]:
        alive, x, right, gold = fields["alive"], fields["x"], fields["right"], fields["gold"]
        # spawn: side and kind are drawn even when every row is taken
        spawning = fields["spawn_timer"] == 0
        spawn_right = tf.cast(tf.cast(uniform[..., 0], tf.float64) < 0.5, tf.int32)
        spawn_gold = tf.cast(tf.cast(uniform[..., 1], tf.float64) < 1 / 3, tf.int32)
        free = 1 - alive
        choice = randint(uniform[..., 2], 0, tf.reduce_sum(free, axis=-1))  # the choice-th free row
        slot = free * tf.cast(tf.cumsum(free, axis=-1) - 1 == choice[..., None], tf.int32)
        slot *= tf.cast(spawning, tf.int32)[..., None]
        new = slot > 0
        alive = tf.where(new, 1, alive)
        x = tf.where(new, 9 * (1 - spawn_right)[..., None], x)
        right = tf.where(new, spawn_right[..., None], right)
        gold = tf.where(new, spawn_gold[..., None], gold)
        spawn_timer = tf.where(spawning, fields["spawn_speed"], fields["spawn_timer"])
        # the player
        px, py = fields["player_x"], fields["player_y"]
        px = tf.where(action == LEFT, tf.maximum(px - 1, 0), tf.where(action == RIGHT, tf.minimum(px + 1, 9), px))
        py = tf.where(action == UP, tf.maximum(py - 1, 1), tf.where(action == DOWN, tf.minimum(py + 1, 8), py))
        row = tf.range(1, SLOTS + 1)

        def touch(alive, x):
            at_player = (alive > 0) & (x == px[..., None]) & (row == py[..., None])
            taken = at_player & (gold > 0)
            return (tf.where(taken, 0, alive), tf.reduce_sum(tf.cast(taken, tf.int32), axis=-1),
                    tf.reduce_any(at_player & (gold == 0), axis=-1))

        alive, reward, dead = touch(alive, x)
        # entities move; leaving the board removes them
        moving = fields["move_timer"] == 0
        moved_x = x + tf.where(right > 0, 1, -1)
        moved_alive = tf.where((moved_x < 0) | (moved_x > 9), 0, alive)
        moved_alive, moved_reward, moved_dead = touch(moved_alive, moved_x)
        alive = tf.where(moving[..., None], moved_alive, alive)
        x = tf.where(moving[..., None] & (alive > 0), moved_x, x)
        reward += tf.where(moving, moved_reward, 0)
        dead |= moving & moved_dead
        move_timer = tf.where(moving, fields["move_speed"], fields["move_timer"]) - 1
        spawn_timer -= 1
        # ramping, while spawning or moving can still speed up
        spawn_speed, move_speed = fields["spawn_speed"], fields["move_speed"]
        ramp_timer, ramp_index = fields["ramp_timer"], fields["ramp_index"]
        ramping = (spawn_speed > 1) | (move_speed > 1)
        ramp = ramping & (ramp_timer < 0)
        move_speed = tf.where(ramp & (move_speed > 1) & (ramp_index % 2 == 1), move_speed - 1, move_speed)
        spawn_speed = tf.where(ramp & (spawn_speed > 1), spawn_speed - 1, spawn_speed)
        ramp_timer = tf.where(ramp, RAMP_INTERVAL, tf.where(ramping, ramp_timer - 1, ramp_timer))
        ramp_index = tf.where(ramp, ramp_index + 1, ramp_index)
        moved = {"player_x": px, "player_y": py, "spawn_speed": spawn_speed, "spawn_timer": spawn_timer,
                 "move_speed": move_speed, "move_timer": move_timer, "ramp_timer": ramp_timer,
                 # an empty row's entity fields are 0, so equal states are equal vectors
                 "ramp_index": ramp_index, "alive": alive, "x": x * alive, "right": right * alive, "gold": gold * alive,
                 "terminal": tf.cast(dead, tf.int32)}
        return moved, reward

    def channels(self, fields: Fields) -> list[tf.Tensor]:
        alive, x, right, gold = fields["alive"], fields["x"], fields["right"], fields["gold"]
        row = tf.broadcast_to(tf.range(1, SLOTS + 1), tf.shape(x))
        here = cell(row, tf.clip_by_value(x, 0, 9)) * alive[..., None]  # [..., 8, 100]
        back = x - tf.where(right > 0, 1, -1)
        trail = cell(row, tf.clip_by_value(back, 0, 9)) * (alive * tf.cast((back >= 0) & (back <= 9), tf.int32))[..., None]
        kind = lambda mask: tf.reduce_sum(here * mask[..., None], axis=-2)
        return [cell(fields["player_y"], fields["player_x"]), kind(1 - gold), tf.reduce_sum(trail, axis=-2), kind(gold)]
