"""MinAtar Seaquest (minatar 1.0.15, `environments/seaquest.py`) in the graph.

The submarine shoots fish and enemy subs (1 point each), dodges them and the subs' bullets,
picks up divers (at most 6) and must surface before its oxygen (200 steps) runs out; surfacing
with no diver ends the game, with divers it costs one (with six it pays the oxygen left as a
bonus), refills the oxygen and ramps the difficulty up (faster spawns, faster enemies). Enemies
spawn every `e_spawn_speed` steps in a random row and side, never facing one already in that
row; divers every 30 steps.

minatar keeps bullets, fish, subs and divers in Python lists that its loops visit newest first,
removing entries as they go; here each list has fixed slots (`entity_lists`), and where entries
interact (a bullet hits the first fish or sub of its cell; a sub or fish hits the first bullet of
its cell; divers fill the sub's six places) ranks within a cell decide who meets whom, as the
visits in minatar's order would. Kept as minatar does, surprises included: surfacing with six divers leaves -1 of
them; a sub that leaves the board or is shot still fires its due bullet, which then flies off.
One difference: minatar removes entries by value, so of two identical fish (same cell, side and
timer, possible only when a spawn follows a difficulty ramp by a step) it may remove the other
one and visit one twice; here each slot is its own entry.
"""

from __future__ import annotations

import tensorflow as tf

from dqn_tf.minatar_graph import entity_lists as lists
from dqn_tf.minatar_graph.game import SIDE, Fields, MinAtarGame, cell, randint

MAX_OXYGEN, INIT_SPAWN_SPEED, DIVER_SPAWN_SPEED, INIT_MOVE_INTERVAL = 200, 20, 30, 5
SHOT_COOL_DOWN, ENEMY_SHOT_INTERVAL, DIVER_MOVE_INTERVAL = 5, 10, 5
LEFT, UP, RIGHT, DOWN, FIRE = 1, 2, 3, 4, 5  # minimal action set: n, l, u, r, d, f
# Slots per list: two friendly bullets fly at once at most (cooldown 5, 10 moves to leave); fish
# and subs live ~33 steps when the ramp spawns every step; a sub fires every 11 steps.
CAPACITY = {"f_bullet": 3, "e_bullet": 24, "fish": 24, "esub": 16, "diver": 4}
LISTS = {"f_bullet": ("x", "y", "dir"), "e_bullet": ("x", "y", "dir"), "fish": ("x", "y", "dir", "timer"),
         "esub": ("x", "y", "dir", "timer", "shot"), "diver": ("x", "y", "dir", "timer")}
SCALARS = ("oxygen", "diver_count", "sub_x", "sub_y", "sub_or", "e_spawn_speed", "e_spawn_timer", "d_spawn_timer",
           "move_speed", "ramp_index", "shot_timer", "surface")


def _step(direction: tf.Tensor) -> tf.Tensor:
    return tf.where(direction > 0, 1, -1)


def _outside(x: tf.Tensor) -> tf.Tensor:
    return (x < 0) | (x > SIDE - 1)


class Seaquest(MinAtarGame):
    CHANNELS = 10
    FIELDS = tuple((name, 1) for name in SCALARS) + tuple(
        (f"{kind}_{name}", CAPACITY[kind]) for kind, names in LISTS.items() for name in ("alive", *names))
    step_draws = 6  # sticky; enemy side, kind, row; diver side, row

    def start(self, uniform: tf.Tensor) -> Fields:
        shape = tf.shape(uniform)[:-1]
        full = lambda value: tf.fill(shape, value)
        fields = {"oxygen": full(MAX_OXYGEN), "diver_count": full(0), "sub_x": full(5), "sub_y": full(0),
                  "sub_or": full(0), "e_spawn_speed": full(INIT_SPAWN_SPEED), "e_spawn_timer": full(INIT_SPAWN_SPEED),
                  "d_spawn_timer": full(DIVER_SPAWN_SPEED), "move_speed": full(INIT_MOVE_INTERVAL),
                  "ramp_index": full(0), "shot_timer": full(0), "surface": full(1)}
        for kind, names in LISTS.items():
            fields.update(self._flatten(kind, lists.empty(shape, CAPACITY[kind], names)))
        return fields

    @staticmethod
    def _flatten(kind: str, entities: lists.EntityList) -> Fields:
        return {f"{kind}_{name}": values for name, values in entities.items()}

    @staticmethod
    def _list(fields: Fields, kind: str) -> lists.EntityList:
        return {name: fields[f"{kind}_{name}"] for name in ("alive", *LISTS[kind])}

    def act(self, fields: Fields, action: tf.Tensor, uniform: tf.Tensor) -> tuple[Fields, tf.Tensor]:
        s = {name: fields[name] for name in SCALARS}
        fish, esubs, divers = (self._list(fields, kind) for kind in ("fish", "esub", "diver"))
        f_bullets, e_bullets = self._list(fields, "f_bullet"), self._list(fields, "e_bullet")
        fish, esubs, divers, s = self._spawn(fish, esubs, divers, s, uniform)
        f_bullets, s = self._player(f_bullets, s, action)
        reward = tf.zeros_like(action)
        f_bullets, fish, esubs, reward = self._friendly_bullets(f_bullets, fish, esubs, reward)
        divers, s = self._divers(divers, s)
        dead = tf.zeros_like(action, tf.bool)
        esubs, f_bullets, e_bullets, reward, dead = self._enemies(esubs, f_bullets, e_bullets, s, reward, dead, True)
        e_bullets, dead = self._enemy_bullets(e_bullets, s, dead)
        fish, f_bullets, _, reward, dead = self._enemies(fish, f_bullets, e_bullets, s, reward, dead, False)
        s, reward, dead = self._timers_and_oxygen(s, reward, dead)
        moved = {**s, "terminal": tf.cast(dead, tf.int32)}
        for kind, entities in (("f_bullet", f_bullets), ("e_bullet", e_bullets), ("fish", fish), ("esub", esubs),
                               ("diver", divers)):
            moved.update(self._flatten(kind, lists.compact(entities)))
        return moved, reward

    def _spawn(self, fish, esubs, divers, s, uniform):
        """_spawn_enemy (never facing an enemy already in its row) and _spawn_diver, when due."""
        spawning = s["e_spawn_timer"] == 0
        right = tf.cast(tf.cast(uniform[..., 0], tf.float64) < 0.5, tf.int32)
        is_sub = tf.cast(uniform[..., 1], tf.float64) < 1 / 3
        row = randint(uniform[..., 2], 1, 9)
        facing = lambda entities: tf.reduce_any((entities["alive"] > 0) & (entities["y"] == row[..., None])
                                                & (entities["dir"] != right[..., None]), axis=-1)
        placed = spawning & ~facing(esubs) & ~facing(fish)
        enemy = {"x": 9 * (1 - right), "y": row, "dir": right, "timer": s["move_speed"]}
        esubs = lists.append(esubs, placed & is_sub, {**enemy, "shot": tf.fill(tf.shape(row), ENEMY_SHOT_INTERVAL)})
        fish = lists.append(fish, placed & ~is_sub, enemy)
        s = {**s, "e_spawn_timer": tf.where(spawning, s["e_spawn_speed"], s["e_spawn_timer"])}
        diving = s["d_spawn_timer"] == 0
        right = tf.cast(tf.cast(uniform[..., 3], tf.float64) < 0.5, tf.int32)
        diver = {"x": 9 * (1 - right), "y": randint(uniform[..., 4], 1, 9), "dir": right,
                 "timer": tf.fill(tf.shape(right), DIVER_MOVE_INTERVAL)}
        divers = lists.append(divers, diving, diver)
        s = {**s, "d_spawn_timer": tf.where(diving, DIVER_SPAWN_SPEED, s["d_spawn_timer"])}
        return fish, esubs, divers, s

    def _player(self, f_bullets, s, action):
        fire = (action == FIRE) & (s["shot_timer"] == 0)
        f_bullets = lists.append(f_bullets, fire, {"x": s["sub_x"], "y": s["sub_y"], "dir": s["sub_or"]})
        x, y = s["sub_x"], s["sub_y"]
        left, right = action == LEFT, action == RIGHT
        return f_bullets, {
            **s, "shot_timer": tf.where(fire, SHOT_COOL_DOWN, s["shot_timer"]),
            "sub_x": tf.where(left, tf.maximum(x - 1, 0), tf.where(right, tf.minimum(x + 1, 9), x)),
            "sub_or": tf.where(left, 0, tf.where(right, 1, s["sub_or"])),
            "sub_y": tf.where(action == UP, tf.maximum(y - 1, 0), tf.where(action == DOWN, tf.minimum(y + 1, 8), y))}

    def _friendly_bullets(self, f_bullets, fish, esubs, reward):
        """Each bullet moves; newest first, a bullet left on the board takes the first fish of its
        cell still there, else the first sub (both vanish): in a cell with F fish, the k-th
        bullet takes fish k while k < F, then sub k - F."""
        live = f_bullets["alive"] > 0
        x = tf.where(live, f_bullets["x"] + _step(f_bullets["dir"]), f_bullets["x"])
        live &= ~_outside(x)
        y = f_bullets["y"]
        fish_live, sub_live = fish["alive"] > 0, esubs["alive"] > 0
        with_fish = live[..., :, None] & fish_live[..., None, :] & lists.same_cell(x, y, fish["x"], fish["y"])
        with_subs = live[..., :, None] & sub_live[..., None, :] & lists.same_cell(x, y, esubs["x"], esubs["y"])
        hit = live & (lists.rank_in_cell(live, x, y, newest_first=True)
                      < lists.count_with(with_fish) + lists.count_with(with_subs))
        bullets_at_fish = lists.count_with(tf.linalg.matrix_transpose(with_fish))
        fish_hit = fish_live & (lists.rank_in_cell(fish_live, fish["x"], fish["y"], newest_first=False) < bullets_at_fish)
        sub_cells = lambda other_x, other_y, other_live: lists.count_with(
            sub_live[..., :, None] & other_live[..., None, :] & lists.same_cell(esubs["x"], esubs["y"], other_x, other_y))
        left_for_subs = sub_cells(x, y, live) - sub_cells(fish["x"], fish["y"], fish_live)
        sub_hit = sub_live & (lists.rank_in_cell(sub_live, esubs["x"], esubs["y"], newest_first=False) < left_for_subs)
        reward += tf.reduce_sum(tf.cast(hit, tf.int32), axis=-1)
        return ({**f_bullets, "x": x, "alive": tf.cast(live & ~hit, tf.int32)},
                {**fish, "alive": tf.cast(fish_live & ~fish_hit, tf.int32)},
                {**esubs, "alive": tf.cast(sub_live & ~sub_hit, tf.int32)}, reward)

    def _divers(self, divers, s):
        """Newest first, a diver at the sub (before or after its move) boards while the sub has
        fewer than six; one that cannot moves on. So the k-th diver able to board does, while
        count + k < 6."""
        count, sx, sy = s["diver_count"], s["sub_x"][..., None], s["sub_y"][..., None]
        live = divers["alive"] > 0
        at_sub = live & (divers["x"] == sx) & (divers["y"] == sy)
        moving = live & (divers["timer"] == 0)
        x = tf.where(moving, divers["x"] + _step(divers["dir"]), divers["x"])
        gone = moving & _outside(x)
        reaches = ~at_sub & moving & ~gone & (x == sx) & (divers["y"] == sy)
        able = at_sub | reaches
        ahead = tf.cumsum(tf.cast(able, tf.int32), axis=-1, reverse=True, exclusive=True)
        boards = able & (count[..., None] + ahead < 6)
        timer = tf.where(moving, DIVER_MOVE_INTERVAL, tf.where(live, divers["timer"] - 1, divers["timer"]))
        divers = {**divers, "x": x, "timer": timer, "alive": tf.cast(live & ~boards & ~gone, tf.int32)}
        return divers, {**s, "diver_count": count + tf.reduce_sum(tf.cast(boards, tf.int32), axis=-1)}

    def _enemies(self, enemies, f_bullets, e_bullets, s, reward, dead, subs: bool):
        """Enemy subs (`subs`) or fish, newest first: touching the sub ends the game; when its
        timer is up one moves, leaves the board, reaches the sub or meets the first friendly
        bullet of its cell still there (both vanish); a sub also fires when its shot timer is
        up, even one that just left the board or was shot."""
        sx, sy = s["sub_x"][..., None], s["sub_y"][..., None]
        live = enemies["alive"] > 0
        y = enemies["y"]
        dead |= tf.reduce_any(live & (enemies["x"] == sx) & (y == sy), axis=-1)
        moving = live & (enemies["timer"] == 0)
        x = tf.where(moving, enemies["x"] + _step(enemies["dir"]), enemies["x"])
        gone = moving & _outside(x)
        reaches = moving & ~gone & (x == sx) & (y == sy)
        dead |= tf.reduce_any(reaches, axis=-1)
        meeting = moving & ~gone & ~reaches
        f_live = f_bullets["alive"] > 0
        pairs = meeting[..., :, None] & f_live[..., None, :] & lists.same_cell(x, y, f_bullets["x"], f_bullets["y"])
        shot = meeting & (lists.rank_in_cell(meeting, x, y, newest_first=True) < lists.count_with(pairs))
        used = f_live & (lists.rank_in_cell(f_live, f_bullets["x"], f_bullets["y"], newest_first=False)
                         < lists.count_with(tf.linalg.matrix_transpose(pairs)))
        reward += tf.reduce_sum(tf.cast(shot, tf.int32), axis=-1)
        timer = tf.where(moving, s["move_speed"][..., None], tf.where(live, enemies["timer"] - 1, enemies["timer"]))
        enemies = {**enemies, "x": x, "timer": timer, "alive": tf.cast(live & ~gone & ~shot, tf.int32)}
        if subs:
            fires = live & (enemies["shot"] == 0)
            enemies["shot"] = tf.where(fires, ENEMY_SHOT_INTERVAL, tf.where(live, enemies["shot"] - 1, enemies["shot"]))
            e_bullets = lists.append_newest_first(e_bullets, fires, {"x": x, "y": y, "dir": enemies["dir"]})
        return enemies, {**f_bullets, "alive": tf.cast(f_live & ~used, tf.int32)}, e_bullets, reward, dead

    def _enemy_bullets(self, e_bullets, s, dead):
        """Each touches the sub (the game ends), moves, leaves the board or reaches the sub."""
        sx, sy = s["sub_x"][..., None], s["sub_y"][..., None]
        live = e_bullets["alive"] > 0
        on_sub = lambda x: live & (x == sx) & (e_bullets["y"] == sy)
        dead |= tf.reduce_any(on_sub(e_bullets["x"]), axis=-1)
        x = tf.where(live, e_bullets["x"] + _step(e_bullets["dir"]), e_bullets["x"])
        gone = live & _outside(x)
        dead |= tf.reduce_any(on_sub(x) & ~gone, axis=-1)
        return {**e_bullets, "x": x, "alive": tf.cast(live & ~gone, tf.int32)}, dead

    def _timers_and_oxygen(self, s, reward, dead):
        down = lambda timer: timer - tf.cast(timer > 0, tf.int32)
        s = {**s, "e_spawn_timer": down(s["e_spawn_timer"]), "d_spawn_timer": down(s["d_spawn_timer"]),
             "shot_timer": down(s["shot_timer"])}
        dead |= s["oxygen"] <= 0
        submerged = s["sub_y"] > 0
        surfacing = ~submerged & (s["surface"] == 0)
        dead |= surfacing & (s["diver_count"] == 0)
        surfaces = surfacing & (s["diver_count"] != 0)  # _surface
        six = surfaces & (s["diver_count"] == 6)
        reward += tf.where(six, s["oxygen"] * 10 // MAX_OXYGEN, 0)
        count = tf.where(six, 0, s["diver_count"]) - tf.cast(surfaces, tf.int32)
        move_speed, spawn_speed, index = s["move_speed"], s["e_spawn_speed"], s["ramp_index"]
        ramp = surfaces & ((spawn_speed > 1) | (move_speed > 2))
        s = {**s, "diver_count": count, "ramp_index": index + tf.cast(ramp, tf.int32),
             "move_speed": tf.where(ramp & (move_speed > 2) & (index % 2 == 1), move_speed - 1, move_speed),
             "e_spawn_speed": tf.where(ramp & (spawn_speed > 1), spawn_speed - 1, spawn_speed),
             "oxygen": tf.where(submerged, s["oxygen"] - 1, tf.where(surfaces, MAX_OXYGEN, s["oxygen"])),
             "surface": tf.where(submerged, 0, tf.where(surfaces, 1, s["surface"]))}
        return s, reward, dead

    def channels(self, fields: Fields) -> list[tf.Tensor]:
        sx, sy = fields["sub_x"], fields["sub_y"]
        column = tf.range(SIDE)
        bottom = lambda cells: tf.pad(tf.cast(cells, tf.int32), [[0, 0]] * (cells.shape.rank - 1) + [[90, 0]])
        oxygen = bottom(column < (tf.maximum(fields["oxygen"], 0) * 10 // MAX_OXYGEN)[..., None])
        divers_gauge = bottom((column >= 9 - fields["diver_count"][..., None]) & (column < 9))

        def drawn(kind: str, trail: bool = False) -> tf.Tensor:
            entities = self._list(fields, kind)
            alive, x, y = entities["alive"], entities["x"], entities["y"]
            if trail:
                x = x - _step(entities["dir"])
                alive = alive * tf.cast(~_outside(x), tf.int32)
            return tf.reduce_sum(cell(y, tf.clip_by_value(x, 0, 9)) * alive[..., None], axis=-2)

        back = tf.math.floormod(sx - tf.where(fields["sub_or"] > 0, 1, -1), SIDE)  # numpy wraps index -1
        trails = drawn("fish", True) + drawn("esub", True) + drawn("diver", True)
        return [cell(sy, sx), cell(sy, back), drawn("f_bullet"), trails, drawn("e_bullet"), drawn("fish"),
                drawn("esub"), oxygen, divers_gauge, drawn("diver")]
