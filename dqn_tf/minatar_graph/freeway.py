"""MinAtar Freeway (minatar 1.0.15, `environments/freeway.py`) in the graph.

The chicken crosses eight lanes of cars from the bottom row to the top one; each crossing scores 1,
sends it back down and gives every car a new speed and direction; a car that hits it sends it
back down. A move up or down takes three steps to recover. The game ends after 2,500 steps.
No difficulty ramp. Draws: eight speeds (randint(1, 6)) and eight directions (sign(rand() -
0.5)), at reset and at every crossing.
"""

from __future__ import annotations

import tensorflow as tf

from dqn_tf.minatar_graph.game import SIDE, Fields, MinAtarGame, cell, randint

PLAYER_SPEED, TIME_LIMIT, CARS = 3, 2500, 8
UP, DOWN = 1, 2  # minimal action set: n, u, d


def _cars(uniform: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """_randomize_cars from 16 uniforms: (signed speeds, their timers) [..., 8]."""
    speeds = randint(uniform[..., :CARS], 1, 6)
    directions = tf.cast(tf.sign(tf.cast(uniform[..., CARS:], tf.float64) - 0.5), tf.int32)
    speeds = speeds * directions
    return speeds, tf.abs(speeds)


class Freeway(MinAtarGame):
    CHANNELS = 7  # chicken, car, then the trail behind a car by its speed (1..5)
    FIELDS = (("pos", 1), ("move_timer", 1), ("terminate_timer", 1), ("car_x", CARS), ("car_timer", CARS),
              ("car_speed", CARS))
    step_draws = 1 + 2 * CARS  # sticky, then a crossing's speeds and directions

    def start(self, uniform: tf.Tensor) -> Fields:
        speed, timer = _cars(uniform)
        shape = tf.shape(uniform)[:-1]
        return {"pos": tf.fill(shape, 9), "move_timer": tf.fill(shape, PLAYER_SPEED),
                "terminate_timer": tf.fill(shape, TIME_LIMIT), "car_x": tf.zeros_like(speed),
                "car_timer": timer, "car_speed": speed}

    def act(self, fields: Fields, action: tf.Tensor, uniform: tf.Tensor) -> tuple[Fields, tf.Tensor]:
        pos, move_timer = fields["pos"], fields["move_timer"]
        ready = move_timer == 0
        up, down = ready & (action == UP), ready & (action == DOWN)
        move_timer = tf.where(up | down, PLAYER_SPEED, move_timer)
        pos = tf.where(up, tf.maximum(pos - 1, 0), tf.where(down, tf.minimum(pos + 1, 9), pos))
        crossed = pos == 0
        new_speed, new_timer = _cars(uniform)
        speed = tf.where(crossed[..., None], new_speed, fields["car_speed"])
        timer = tf.where(crossed[..., None], new_timer, fields["car_timer"])
        pos = tf.where(crossed, 9, pos)
        # cars in order; once one sends the chicken down (row 9, no lane) no later car can hit it
        lane = tf.range(1, CARS + 1)
        car_x = fields["car_x"]
        in_lane = lane == pos[..., None]
        hit = in_lane & (car_x == 4)
        moves = timer == 0
        step = tf.where(speed > 0, 1, -1)
        moved_x = tf.math.floormod(car_x + step, SIDE)  # off one side, on at the other
        car_x = tf.where(moves, moved_x, car_x)
        hit |= moves & in_lane & (car_x == 4)
        timer = tf.where(moves, tf.abs(speed), timer - 1)
        pos = tf.where(tf.reduce_any(hit, axis=-1), 9, pos)
        terminate_timer = fields["terminate_timer"] - 1
        moved = {"pos": pos, "move_timer": move_timer - tf.cast(move_timer > 0, tf.int32),
                 "terminate_timer": terminate_timer, "car_x": car_x, "car_timer": timer, "car_speed": speed,
                 "terminal": tf.cast(terminate_timer < 0, tf.int32)}
        return moved, tf.cast(crossed, tf.int32)

    def channels(self, fields: Fields) -> list[tf.Tensor]:
        four = tf.fill(tf.shape(fields["pos"]), 4)
        car_x, speed = fields["car_x"], fields["car_speed"]
        lane = tf.broadcast_to(tf.range(1, CARS + 1), tf.shape(car_x))
        cars = cell(lane, car_x)  # [..., 8, 100]
        back = tf.math.floormod(car_x - tf.where(speed > 0, 1, -1), SIDE)
        trails = cell(lane, back)
        by_speed = [tf.reduce_sum(trails * tf.cast(tf.abs(speed) == s, tf.int32)[..., None], axis=-2)
                    for s in range(1, 6)]
        return [cell(fields["pos"], four), tf.reduce_sum(cars, axis=-2), *by_speed]
