"""MinAtar Breakout (minatar 1.0.15, `environments/breakout.py`) in the graph.

The ball moves diagonally; it bounces off the walls, the ceiling, bricks and the paddle, and the
game ends when it passes the paddle. A brick struck on one step cannot be struck on the next
(`strike`): the ball then passes into the brick's cell. When the ball reaches the bottom row
with no brick left, three fresh rows appear. No difficulty ramp. Reset draw: which top corner
the ball starts from.
"""

from __future__ import annotations

import tensorflow as tf

from dqn_tf.minatar_graph.game import SIDE, Fields, MinAtarGame, at, cell, randint

# ball_dir 0..3: up-left, up-right, down-right, down-left
DX, DY = (-1, 1, 1, -1), (-1, -1, 1, 1)
FLIP_X, FLIP_Y, PADDLE_EDGE = (1, 0, 3, 2), (3, 2, 1, 0), (2, 3, 0, 1)
BRICK_ROWS = (1, 4)  # rows 1..3 hold bricks at the start and after a clear


def _lookup(table: tuple[int, ...], index: tf.Tensor) -> tf.Tensor:
    return tf.gather(tf.constant(table, tf.int32), index)


def _fresh_bricks(shape: tf.Tensor) -> tf.Tensor:
    rows = tf.range(SIDE * SIDE) // SIDE
    full = tf.cast((rows >= BRICK_ROWS[0]) & (rows < BRICK_ROWS[1]), tf.int32)
    return tf.broadcast_to(full, tf.concat([shape, [SIDE * SIDE]], axis=0))


class Breakout(MinAtarGame):
    CHANNELS = 4  # paddle, ball, trail, brick
    step_draws = 1  # the sticky action only
    FIELDS = (("ball_x", 1), ("ball_y", 1), ("ball_dir", 1), ("pos", 1), ("last_x", 1), ("last_y", 1),
              ("strike", 1), ("bricks", SIDE * SIDE))

    def start(self, uniform: tf.Tensor) -> Fields:
        right = randint(uniform[..., 0], 0, 2)  # randint(2): start at (0, 3) going down-right, or (9, 3) down-left
        ball_x, ball_dir = 9 * right, 2 + right
        ball_y = tf.fill(tf.shape(right), 3)
        return {"ball_x": ball_x, "ball_y": ball_y, "ball_dir": ball_dir, "pos": tf.fill(tf.shape(right), 4),
                "last_x": ball_x, "last_y": ball_y, "strike": tf.zeros_like(right),
                "bricks": _fresh_bricks(tf.shape(right))}

    def act(self, fields: Fields, action: tf.Tensor, uniform: tf.Tensor) -> tuple[Fields, tf.Tensor]:
        del uniform  # no draws beyond the sticky action
        pos = fields["pos"]
        pos = tf.where(action == 1, tf.maximum(pos - 1, 0), tf.where(action == 2, tf.minimum(pos + 1, 9), pos))
        ball_x, ball_y, ball_dir = fields["ball_x"], fields["ball_y"], fields["ball_dir"]
        bricks = fields["bricks"]
        new_x, new_y = ball_x + _lookup(DX, ball_dir), ball_y + _lookup(DY, ball_dir)
        off_side = (new_x < 0) | (new_x > 9)
        new_x = tf.clip_by_value(new_x, 0, 9)
        ball_dir = tf.where(off_side, _lookup(FLIP_X, ball_dir), ball_dir)
        ceiling = new_y < 0
        brick = ~ceiling & (at(bricks, new_y, new_x) == 1)
        bottom = ~ceiling & ~brick & (new_y == 9)
        # a brick struck right after another is passed through
        strikes = brick & (fields["strike"] == 0)
        reward = tf.cast(strikes, tf.int32)
        bricks = bricks * (1 - cell(new_y, new_x) * reward[..., None])
        cleared = bottom & (tf.reduce_sum(bricks, axis=-1) == 0)
        bricks = tf.where(cleared[..., None], _fresh_bricks(tf.shape(pos)), bricks)
        paddle_top = bottom & (ball_x == pos)
        paddle_edge = bottom & ~paddle_top & (new_x == pos)
        missed = bottom & ~paddle_top & ~paddle_edge
        ball_dir = tf.where(ceiling | strikes | paddle_top, _lookup(FLIP_Y, ball_dir),
                            tf.where(paddle_edge, _lookup(PADDLE_EDGE, ball_dir), ball_dir))
        new_y = tf.where(ceiling, 0, tf.where(strikes | paddle_top | paddle_edge, ball_y, new_y))
        moved = {"pos": pos, "ball_x": new_x, "ball_y": new_y, "ball_dir": ball_dir, "last_x": ball_x,
                 "last_y": ball_y, "strike": tf.cast(brick, tf.int32), "bricks": bricks,
                 "terminal": tf.cast(missed, tf.int32)}
        return moved, reward

    def channels(self, fields: Fields) -> list[tf.Tensor]:
        nine = tf.fill(tf.shape(fields["pos"]), 9)
        return [cell(nine, fields["pos"]), cell(fields["ball_y"], fields["ball_x"]),
                cell(fields["last_y"], fields["last_x"]), fields["bricks"]]
