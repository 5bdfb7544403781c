"""In-graph envs for the compiled loop: the interface, and CartPole-v1, Acrobot-v1 and
MountainCar-v0 as pure TensorFlow functions (the MinAtar games are in `minatar_graph`).

The compiled training loop steps its envs inside one XLA program, so an env here is three pure
functions of a float64 state tensor: no Python-side state, no tf.Variable and no random ops (the
loop owns the uniform draws, and the episode step counter, hence truncation at
`max_episode_steps`). Each copies gymnasium 1.4's maths operation for operation, in float64 as
gymnasium's numpy does, so observations agree with gymnasium's to float32 rounding
(tests/dqn_tf/test_graph_envs.py steps both side by side). All functions broadcast over any
leading dims, e.g. [members, n_envs].
"""

from __future__ import annotations

import abc
import dataclasses
import math
from typing import ClassVar

import tensorflow as tf


@dataclasses.dataclass(frozen=True)
class GraphEnv(abc.ABC):
    """One env as pure in-graph functions; one subclass per env. Vector envs keep the class
    defaults below (float64 states, float32 observations, no random draws in a step)."""

    env_id: str
    obs_dim: int  # elements of one observation
    n_actions: int
    state_dim: int
    max_episode_steps: int  # gymnasium's TimeLimit; the loop truncates with its own step counter
    reset_draws: int  # uniform [0, 1) numbers one reset consumes

    step_draws: ClassVar[int] = 0  # uniform [0, 1) numbers one step consumes
    state_dtype: ClassVar[tf.DType] = tf.float64
    obs_dtype: ClassVar[str] = "float32"

    @property
    def obs_shape(self) -> tuple[int, ...]:
        return (self.obs_dim,)

    @abc.abstractmethod
    def initial_state(self, uniform: tf.Tensor) -> tf.Tensor:
        """uniform [..., reset_draws] float64 in [0, 1) -> state [..., state_dim], drawn as the
        reference env's reset draws it."""

    def restart(self, previous: tf.Tensor, uniform: tf.Tensor) -> tf.Tensor:
        """The state an autoreset starts from after `previous` ended: a fresh start, unless the
        reference env carries something across episodes (MinAtar: the sticky action)."""
        del previous
        return self.initial_state(uniform)

    @abc.abstractmethod
    def observe(self, state: tf.Tensor) -> tf.Tensor:
        """state [..., state_dim] -> the observation [..., *obs_shape] the reference env returns."""

    @abc.abstractmethod
    def step(self, state: tf.Tensor, action: tf.Tensor,
             uniform: tf.Tensor | None = None) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """state, action [...] int32, uniform [..., step_draws] float32 in [0, 1) (None when
        step_draws is 0) -> (next state, reward float32, terminated bool)."""


def _uniform(u: tf.Tensor, low: float, high: float) -> tf.Tensor:
    """numpy's Generator.uniform(low, high) from its [0, 1) draw: low + (high - low) * u."""
    return low + (high - low) * tf.convert_to_tensor(u, tf.float64)


def _f64(value: float) -> tf.Tensor:
    return tf.constant(value, tf.float64)


class _CartPole(GraphEnv):
    """gymnasium's CartPoleEnv: euler integrator; reward 1 on every step, the terminating one too
    (sutton_barto_reward=False)."""

    gravity = 9.8
    masscart = 1.0
    masspole = 0.1
    total_mass = masspole + masscart
    length = 0.5  # half the pole's length
    polemass_length = masspole * length
    force_mag = 10.0
    tau = 0.02
    theta_threshold_radians = 12 * 2 * math.pi / 360
    x_threshold = 2.4

    def initial_state(self, uniform: tf.Tensor) -> tf.Tensor:
        return _uniform(uniform, -0.05, 0.05)

    def observe(self, state: tf.Tensor) -> tf.Tensor:
        return tf.cast(state, tf.float32)

    def step(self, state: tf.Tensor, action: tf.Tensor,
             uniform: tf.Tensor | None = None) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        x, x_dot, theta, theta_dot = tf.unstack(state, axis=-1)
        force = tf.where(action == 1, _f64(self.force_mag), _f64(-self.force_mag))
        costheta = tf.cos(theta)
        sintheta = tf.sin(theta)
        temp = (force + self.polemass_length * tf.square(theta_dot) * sintheta) / self.total_mass
        thetaacc = (self.gravity * sintheta - costheta * temp) / (
            self.length * (4.0 / 3.0 - self.masspole * tf.square(costheta) / self.total_mass)
        )
        xacc = temp - self.polemass_length * thetaacc * costheta / self.total_mass
        x = x + self.tau * x_dot
        x_dot = x_dot + self.tau * xacc
        theta = theta + self.tau * theta_dot
        theta_dot = theta_dot + self.tau * thetaacc
        terminated = (
            (x < -self.x_threshold)
            | (x > self.x_threshold)
            | (theta < -self.theta_threshold_radians)
            | (theta > self.theta_threshold_radians)
        )
        next_state = tf.stack([x, x_dot, theta, theta_dot], axis=-1)
        return next_state, tf.ones_like(x, tf.float32), terminated


def _wrap(x: tf.Tensor, m: float, big_m: float) -> tf.Tensor:
    """gymnasium's acrobot `wrap` (add or subtract M - m until m <= x <= M) in closed form: one
    rk4 step can move an angle by several turns, and a data-dependent loop would cost more.
    Equal to the loop up to rounding of the k * (M - m) shift."""
    diff = big_m - m
    above = x - diff * tf.math.ceil((x - big_m) / diff)
    below = x + diff * tf.math.ceil((m - x) / diff)
    return tf.where(x > big_m, above, tf.where(x < m, below, x))


def _bound(x: tf.Tensor, m: float, big_m: float) -> tf.Tensor:
    """gymnasium's acrobot `bound`: min(max(x, m), M)."""
    return tf.minimum(tf.maximum(x, m), big_m)


class _Acrobot(GraphEnv):
    """gymnasium's AcrobotEnv: "book" dynamics, one rk4 step of dt, no torque noise; reward -1,
    0 on the terminating step. State: theta1, theta2, dtheta1, dtheta2."""

    dt = 0.2
    LINK_LENGTH_1 = 1.0
    LINK_MASS_1 = 1.0
    LINK_MASS_2 = 1.0
    LINK_COM_POS_1 = 0.5
    LINK_COM_POS_2 = 0.5
    LINK_MOI = 1.0
    MAX_VEL_1 = 4 * math.pi
    MAX_VEL_2 = 9 * math.pi

    def initial_state(self, uniform: tf.Tensor) -> tf.Tensor:
        # gymnasium keeps the reset draw as float32 (`.astype(np.float32)`); steps are float64.
        return tf.cast(tf.cast(_uniform(uniform, -0.1, 0.1), tf.float32), tf.float64)

    def observe(self, state: tf.Tensor) -> tf.Tensor:
        theta1, theta2, dtheta1, dtheta2 = tf.unstack(state, axis=-1)
        obs = [tf.cos(theta1), tf.sin(theta1), tf.cos(theta2), tf.sin(theta2), dtheta1, dtheta2]
        return tf.cast(tf.stack(obs, axis=-1), tf.float32)

    def step(self, state: tf.Tensor, action: tf.Tensor,
             uniform: tf.Tensor | None = None) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        torque = tf.cast(action - 1, tf.float64)  # AVAIL_TORQUE = [-1.0, 0.0, +1]
        # gymnasium's rk4 over t = [0, dt]; the torque's derivative is 0, so it is kept aside.
        dt = self.dt
        dt2 = dt / 2.0
        k1 = self._dsdt(state, torque)
        k2 = self._dsdt(state + dt2 * k1, torque)
        k3 = self._dsdt(state + dt2 * k2, torque)
        k4 = self._dsdt(state + dt * k3, torque)
        ns = state + dt / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)
        theta1, theta2, dtheta1, dtheta2 = tf.unstack(ns, axis=-1)
        theta1 = _wrap(theta1, -math.pi, math.pi)
        theta2 = _wrap(theta2, -math.pi, math.pi)
        dtheta1 = _bound(dtheta1, -self.MAX_VEL_1, self.MAX_VEL_1)
        dtheta2 = _bound(dtheta2, -self.MAX_VEL_2, self.MAX_VEL_2)
        terminated = -tf.cos(theta1) - tf.cos(theta2 + theta1) > 1.0
        reward = tf.where(terminated, tf.constant(0.0), tf.constant(-1.0))
        return tf.stack([theta1, theta2, dtheta1, dtheta2], axis=-1), reward, terminated

    def _dsdt(self, s: tf.Tensor, a: tf.Tensor) -> tf.Tensor:
        """gymnasium's AcrobotEnv._dsdt ("book"), same operation order; -> [..., 4]."""
        m1 = self.LINK_MASS_1
        m2 = self.LINK_MASS_2
        l1 = self.LINK_LENGTH_1
        lc1 = self.LINK_COM_POS_1
        lc2 = self.LINK_COM_POS_2
        I1 = self.LINK_MOI
        I2 = self.LINK_MOI
        g = 9.8
        pi = math.pi
        theta1, theta2, dtheta1, dtheta2 = tf.unstack(s, axis=-1)
        d1 = m1 * lc1**2 + m2 * (l1**2 + lc2**2 + 2 * l1 * lc2 * tf.cos(theta2)) + I1 + I2
        d2 = m2 * (lc2**2 + l1 * lc2 * tf.cos(theta2)) + I2
        phi2 = m2 * lc2 * g * tf.cos(theta1 + theta2 - pi / 2.0)
        phi1 = (
            -m2 * l1 * lc2 * tf.square(dtheta2) * tf.sin(theta2)
            - 2 * m2 * l1 * lc2 * dtheta2 * dtheta1 * tf.sin(theta2)
            + (m1 * lc1 + m2 * l1) * g * tf.cos(theta1 - pi / 2)
            + phi2
        )
        ddtheta2 = (
            a + d2 / d1 * phi1 - m2 * l1 * lc2 * tf.square(dtheta1) * tf.sin(theta2) - phi2
        ) / (m2 * lc2**2 + I2 - tf.square(d2) / d1)
        ddtheta1 = -(d2 * ddtheta2 + phi1) / d1
        return tf.stack([dtheta1, dtheta2, ddtheta1, ddtheta2], axis=-1)


class _MountainCar(GraphEnv):
    """gymnasium's MountainCarEnv (goal_velocity 0): reward -1 every step; state: position,
    velocity."""

    min_position = -1.2
    max_position = 0.6
    max_speed = 0.07
    goal_position = 0.5
    goal_velocity = 0.0
    force = 0.001
    gravity = 0.0025

    def initial_state(self, uniform: tf.Tensor) -> tf.Tensor:
        position = _uniform(uniform[..., 0], -0.6, -0.4)
        return tf.stack([position, tf.zeros_like(position)], axis=-1)

    def observe(self, state: tf.Tensor) -> tf.Tensor:
        return tf.cast(state, tf.float32)

    def step(self, state: tf.Tensor, action: tf.Tensor,
             uniform: tf.Tensor | None = None) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        position, velocity = tf.unstack(state, axis=-1)
        velocity = velocity + (
            tf.cast(action - 1, tf.float64) * self.force + tf.cos(3 * position) * (-self.gravity)
        )
        velocity = tf.minimum(tf.maximum(velocity, -self.max_speed), self.max_speed)  # np.clip
        position = position + velocity
        position = tf.minimum(tf.maximum(position, self.min_position), self.max_position)
        at_wall = (position == self.min_position) & (velocity < 0)
        velocity = tf.where(at_wall, tf.zeros_like(velocity), velocity)
        terminated = (position >= self.goal_position) & (velocity >= self.goal_velocity)
        reward = tf.fill(tf.shape(position), -1.0)
        return tf.stack([position, velocity], axis=-1), reward, terminated


_GRAPH_ENVS: dict[str, GraphEnv] = {
    env.env_id: env
    for env in (
        _CartPole("CartPole-v1", obs_dim=4, n_actions=2, state_dim=4, max_episode_steps=500,
                  reset_draws=4),
        _Acrobot("Acrobot-v1", obs_dim=6, n_actions=3, state_dim=4, max_episode_steps=500,
                 reset_draws=4),
        _MountainCar("MountainCar-v0", obs_dim=2, n_actions=3, state_dim=2, max_episode_steps=200,
                     reset_draws=1),
    )
}


def graph_env(env_id: str) -> GraphEnv | None:
    """The in-graph version of env_id, or None (then the gymnasium path is used)."""
    if env_id.startswith("MinAtar/"):
        from dqn_tf.minatar_graph import minatar_graph_env

        return minatar_graph_env(env_id)
    return _GRAPH_ENVS.get(env_id)
