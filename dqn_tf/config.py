"""Trainer configuration: every DQN hyperparameter, validated before any work starts.

Names follow Stable-Baselines3 / rl-baselines3-zoo so that their tuned settings carry over.
The defaults are rl-zoo's tuned CartPole-v1 settings. This module imports no TensorFlow,
so the sweep driver can validate thousands of configs cheaply.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from typing import Any, Literal

from pydantic import ConfigDict, Field, ValidationError, field_validator
from pydantic.dataclasses import dataclass

from dqn_tf import env_source
from dqn_tf.envs import check_env
from dqn_tf.errors import ConfigError
from dqn_tf.net_arch import NET_ARCH_ALLOWED, NET_ARCH_NAMES, resolve_net_arch

# graph_envs and minatar_graph have them in TensorFlow
COMPILED_ENV_IDS = ("CartPole-v1", "Acrobot-v1", "MountainCar-v0", "MinAtar/Breakout-v1", "MinAtar/Freeway-v1",
                    "MinAtar/Asterix-v1", "MinAtar/SpaceInvaders-v1", "MinAtar/Seaquest-v1")
DEVICES_PATTERN = re.compile(r"^(auto|cpu|cpu:[1-9][0-9]*|gpu|gpu:[1-9][0-9]*)$")
DEVICE_NAME_PATTERN = re.compile(r"^/?(job:[^/]+/)?(device:)?(cpu|gpu|CPU|GPU):[0-9]+$")
DEVICES_ALLOWED = (
    "'auto', 'cpu', 'cpu:N' (N logical CPU devices), 'gpu', 'gpu:N' (the first N GPUs) "
    "or a list of device names such as ['/gpu:0', '/gpu:1']"
)


@dataclass(frozen=True, config=ConfigDict(extra="forbid"))
class TrainConfig:
    """All hyperparameters of one DQN training run (SB3 names; rl-zoo CartPole-v1 defaults).

    Step counts are environment transitions, as in SB3: `train_freq` and `gradient_steps` say
    "every `train_freq` steps of the vector env, take `gradient_steps` gradient steps";
    `target_update_interval` counts transitions; the target net stays fixed during a train call.
    """

    env_id: str = "CartPole-v1"  # a registered id, or gymnasium's 'module:EnvId' (module imported first)
    # the user's env (`dqn_tf.env_source`): modules imported before the env is made (they register
    # its id), keywords for its constructor, and `module:Callable` wrappers with their keywords
    env_packages: tuple[str, ...] = ()
    env_kwargs: dict[str, Any] = Field(default_factory=dict)
    env_wrappers: tuple[dict[str, dict[str, Any]], ...] = ()
    total_timesteps: int = Field(50_000, gt=0)
    n_envs: int = Field(1, ge=1, le=4096)
    learning_rate: float = Field(2.3e-3, gt=0, le=1)
    gamma: float = Field(0.99, ge=0, le=1)
    batch_size: int = Field(64, ge=1)
    buffer_size: int = Field(100_000, ge=1)
    learning_starts: int = Field(1_000, ge=0)
    train_freq: int = Field(256, ge=1)
    gradient_steps: int = Field(128, ge=1)
    target_update_interval: int = Field(10, ge=1)
    tau: float = Field(1.0, gt=0, le=1)
    exploration_fraction: float = Field(0.16, ge=0, le=1)
    exploration_initial_eps: float = Field(1.0, ge=0, le=1)
    exploration_final_eps: float = Field(0.04, ge=0, le=1)
    # "auto": an MLP [256, 256] for vectors, a CNN for images; a CNN by name; or MLP layer sizes
    net_arch: str | tuple[int, ...] = "auto"
    double_dqn: bool = False
    dueling: bool = False
    max_grad_norm: float = Field(10.0, gt=0)
    huber_delta: float = Field(1.0, gt=0)  # 1.0 is SB3's smooth L1 loss
    eval_freq: int = Field(5_000, ge=0)
    n_eval_episodes: int = Field(10, ge=1, le=1000)
    seed: int = Field(0, ge=0, lt=2**31)
    devices: str | tuple[str, ...] = "auto"
    # mixed_*: compute in bfloat16 / float16, weights and loss in float32 (float16: loss scaling)
    precision: Literal["float32", "mixed_bfloat16", "mixed_float16"] = "float32"
    # compiled: env, acting, replay and training in one XLA program per chunk (COMPILED_ENV_IDS,
    # on one device); python: gymnasium envs stepped from Python; auto: compiled wherever it
    # exists and the env is exactly gymnasium's (no env_wrappers, no env_kwargs but
    # max_episode_steps). The two draw different random numbers, so each is reproducible alone.
    loop: Literal["auto", "compiled", "python"] = "auto"

    @field_validator("net_arch", mode="before")
    @classmethod
    def _known_net_arch(cls, value: Any) -> str | tuple[int, ...]:
        if isinstance(value, str):
            if value not in NET_ARCH_NAMES:
                raise ValueError(f"allowed: {NET_ARCH_ALLOWED}")
            return value
        if not isinstance(value, (list, tuple)) or not all(
                isinstance(units, int) and not isinstance(units, bool) and units >= 1 for units in value):
            raise ValueError(f"every layer size must be a positive integer; allowed: {NET_ARCH_ALLOWED}")
        return tuple(value)

    @field_validator("devices")
    @classmethod
    def _known_devices(cls, value: str | tuple[str, ...]) -> str | tuple[str, ...]:
        if isinstance(value, str):
            if not DEVICES_PATTERN.match(value):
                raise ValueError(f"allowed: {DEVICES_ALLOWED}")
        elif not value or not all(DEVICE_NAME_PATTERN.match(name) for name in value):
            raise ValueError(f"allowed: {DEVICES_ALLOWED}")
        return value

    @field_validator("env_id")
    @classmethod
    def _env_id_form(cls, value: str) -> str:
        env_source.split_env_id(value)  # registered? checked where the env is made (`parse_config`)
        return value

    @field_validator("env_packages")
    @classmethod
    def _module_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [name for name in value if not env_source.MODULE_PATTERN.match(name)]
        if bad:
            raise ValueError(f"{bad[0]!r} is not a module name; allowed: importable names such as 'my_envs'")
        return value

    @field_validator("env_kwargs")
    @classmethod
    def _keywords(cls, value: dict[str, Any]) -> dict[str, Any]:
        bad = [key for key in value if not key.isidentifier()]
        if bad:
            raise ValueError(f"{bad[0]!r} is not a keyword name")
        return value

    @field_validator("env_wrappers", mode="before")
    @classmethod
    def _wrapper_entries(cls, value: Any) -> tuple[dict[str, dict[str, Any]], ...]:
        return env_source.normalise_wrappers(value)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Build a config from plain data, raising ConfigError naming every bad field."""
        known = field_names()
        unknown = [key for key in values if key not in known]
        if unknown:
            problems = []
            for key in unknown:
                close = difflib.get_close_matches(key, known, n=1)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                problems.append(f"{key}: unknown field{hint}")
            raise ConfigError(
                "invalid trainer config: " + "; ".join(problems) + f". Allowed fields: {', '.join(known)}"
            )
        normalised = {k: (tuple(v) if isinstance(v, list) else v) for k, v in values.items()}
        try:
            return cls(**normalised)
        except ValidationError as error:
            raise ConfigError(format_validation_error(error, values)) from None

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-ready data (tuples become lists) that `from_dict` accepts back."""
        out = dataclasses.asdict(self)
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in out.items()}

    def replace(self, **changes: Any) -> TrainConfig:
        return TrainConfig.from_dict({**self.to_dict(), **changes})

    def check_consistency(self) -> None:
        """Cross-field rules that single-field validation cannot express."""
        if self.exploration_final_eps > self.exploration_initial_eps:
            raise ConfigError(
                f"exploration_final_eps = {self.exploration_final_eps} must be <= "
                f"exploration_initial_eps = {self.exploration_initial_eps}"
            )
        if self.loop == "compiled" and env_source.registered_id(self.env_id) not in COMPILED_ENV_IDS:
            raise ConfigError(
                f"loop = 'compiled': env_id = {self.env_id!r} has no in-graph version (those are "
                f"{', '.join(COMPILED_ENV_IDS)}); use loop 'auto' or 'python'"
            )
        if self.loop == "compiled" and (reasons := env_source.graph_differences(self)):
            raise ConfigError(f"loop = 'compiled': {'; '.join(reasons)}; use loop 'auto' or 'python'")


# Fields that change array shapes, the graph or the loop's schedule: one value per population.
# The others (learning_rate, gamma, tau, exploration_*, max_grad_norm, huber_delta, seed) may
# differ per member.
POPULATION_SHARED_FIELDS = (
    "env_id", "env_packages", "env_kwargs", "env_wrappers", "total_timesteps", "n_envs", "batch_size", "buffer_size", "learning_starts",
    "train_freq", "gradient_steps", "target_update_interval", "net_arch", "double_dqn", "dueling", "precision",
    "eval_freq", "n_eval_episodes", "devices", "loop",
)


def check_population(configs: list[TrainConfig]) -> None:
    """Members of one population must agree on every shape-changing field."""
    if not configs:
        raise ConfigError("a population needs at least one config, got an empty list")
    problems = []
    for field in POPULATION_SHARED_FIELDS:
        values = [getattr(config, field) for config in configs]
        if any(value != values[0] for value in values):
            shown = ", ".join(f"member {k} = {value!r}" for k, value in enumerate(values))
            problems.append(f"{field} differs ({shown})")
    if problems:
        raise ConfigError(
            "population members must share every shape-changing field: " + "; ".join(problems)
            + ". Members may differ only in seed, learning_rate, gamma, tau, exploration_*, "
            "max_grad_norm, huber_delta"
        )


def field_names() -> list[str]:
    return [f.name for f in dataclasses.fields(TrainConfig)]


def format_validation_error(error: ValidationError, values: dict[str, Any]) -> str:
    """One line per bad field: `field = value: what is allowed`."""
    problems = []
    for item in error.errors():
        field = str(item["loc"][0]) if item["loc"] else "config"
        shown = values.get(field, item.get("input"))
        message = item["msg"].removeprefix("Value error, ")
        problems.append(f"{field} = {shown!r}: {message}")
    return "invalid trainer config: " + "; ".join(problems)


def parse_config(values: dict[str, Any] | TrainConfig) -> TrainConfig:
    """Accept a TrainConfig or a dict; always return a fully checked TrainConfig."""
    config = values if isinstance(values, TrainConfig) else TrainConfig.from_dict(values)
    config.check_consistency()
    obs_shape, _ = check_env(config)
    resolve_net_arch(config.net_arch, obs_shape, f"env_id = {config.env_id!r}")  # a named CNN must fit
    return config

