"""Where a run's env comes from: the user's code and settings around a gymnasium id.

rl-baselines3-zoo's conventions: `env_id` may be gymnasium's `module:EnvId` (the module is
imported first, so it can register EnvId); `env_packages` are more modules imported before the
env is made; `env_kwargs` go to the env's constructor (or to `gymnasium.make`, for
`max_episode_steps`); `env_wrappers` are `module:Callable` entries, each with its keyword
arguments, applied in order to every env of the training vector env and of the evaluation env
(as Stable-Baselines3 does). Dict, Tuple and Discrete observations are flattened into a vector
by gymnasium's `FlattenObservation`. The observations of the user's envs (and of any env behind
the user's wrappers) are checked every step (shape, finite values), so an env that breaks its
own observation space fails its run with a message naming it; gymnasium's and dqn_tf's own
envs are spared that per-step cost.

Every problem a config can have is a `ConfigError` naming the field, found where configs are
checked (before any training). This module imports no TensorFlow.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import importlib
import inspect
import re
from collections.abc import Callable, Mapping
from typing import Any

import gymnasium as gym
import numpy as np

from dqn_tf.errors import ConfigError

MODULE = r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*"
MODULE_PATTERN = re.compile(rf"^{MODULE}$")
ENV_ID_PATTERN = re.compile(rf"^(?:(?P<module>{MODULE}):)?(?P<name>[^:\s]+)$")
CALLABLE_PATTERN = re.compile(rf"^{MODULE}:[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*$")
MAKE_KWARGS = ("max_episode_steps",)  # gymnasium.make's own keyword: the TimeLimit of the env
GRAPH_KWARGS = frozenset(MAKE_KWARGS)  # what an in-graph env honours (its episode step counter)
FLATTENED = (gym.spaces.Dict, gym.spaces.Tuple, gym.spaces.Discrete, gym.spaces.MultiDiscrete,
             gym.spaces.MultiBinary)
TRUSTED_MODULES = ("gymnasium.envs.", "dqn_tf.")  # envs whose observations are not checked each step
WORKER_HINT = "install it where the trials run, put it on PYTHONPATH, or send it with `dqn-sweep run --upload PATH`"


class EnvError(RuntimeError):
    """An env broke its own observation space during a run (the run fails naming it)."""


def split_env_id(env_id: str) -> tuple[str | None, str]:
    """`module:EnvId` -> (module, EnvId); a plain id -> (None, id)."""
    match = ENV_ID_PATTERN.match(env_id)
    if match is None:
        raise ValueError("expected a gymnasium id such as 'CartPole-v1' or 'module:EnvId'")
    return match["module"], match["name"]


def registered_id(env_id: str) -> str:
    """The id gymnasium's registry knows the env by (`module:` dropped)."""
    return split_env_id(env_id)[1]


def normalise_wrappers(value: Any) -> tuple[dict[str, dict[str, Any]], ...]:
    """rl-zoo's forms, `module:Callable` or `{module:Callable: {kwargs}}`, as `({path: kwargs}, ...)`."""
    if value is None:
        return ()
    items = [value] if isinstance(value, (str, Mapping)) else list(value)
    out = []
    for item in items:
        if isinstance(item, str):
            item = {item: {}}
        if not isinstance(item, Mapping) or len(item) != 1:
            raise ValueError("each wrapper is 'module:Callable' or {'module:Callable': {keyword: value}}")
        (path, kwargs), = item.items()
        if not isinstance(path, str) or not CALLABLE_PATTERN.match(path):
            raise ValueError(f"{path!r} is not 'module:Callable' (e.g. 'gymnasium.wrappers:ClipReward')")
        if kwargs is not None and not isinstance(kwargs, Mapping):
            raise ValueError(f"the arguments of {path} must be a mapping of keywords, got {kwargs!r}")
        out.append({path: dict(kwargs or {})})
    return tuple(out)


_IMPORTED: set[str] = set()
_BUILTIN_SPECS: dict[str, Any] = {}  # the registry before any user code was imported through us


def import_module(name: str, field: str) -> None:
    """Import a module that registers envs; any failure is a ConfigError naming `field`."""
    if name in _IMPORTED:
        return
    if not _BUILTIN_SPECS:
        _BUILTIN_SPECS.update(gym.registry)
    try:
        importlib.import_module(name)
    except Exception as error:  # noqa: BLE001 - the user's module may raise anything on import
        raise ConfigError(f"{field}: cannot import {name!r} ({type(error).__name__}: {error}); {WORKER_HINT}") from None
    _IMPORTED.add(name)


def load_callable(path: str, field: str) -> Callable[..., Any]:
    module, _, attr = path.partition(":")
    import_module(module, field)
    target: Any = importlib.import_module(module)
    for part in attr.split("."):
        if not hasattr(target, part):
            raise ConfigError(f"{field}: module {module!r} has no attribute {attr!r}")
        target = getattr(target, part)
    if not callable(target):
        raise ConfigError(f"{field}: not callable")
    return target


@dataclasses.dataclass(frozen=True)
class EnvSource:
    """The env of a run, as its config names it: id, modules to import, kwargs, wrappers."""

    env_id: str
    packages: tuple[str, ...] = ()
    kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    wrappers: tuple[Mapping[str, Mapping[str, Any]], ...] = ()

    @classmethod
    def of(cls, env: str | EnvSource | Any) -> EnvSource:
        """From an id, a source, or anything with `env_*` fields (a TrainConfig)."""
        if isinstance(env, EnvSource):
            return env
        if isinstance(env, str):
            return cls(env)
        return cls(env.env_id, tuple(env.env_packages), dict(env.env_kwargs), tuple(env.env_wrappers))

    @property
    def name(self) -> str:
        return registered_id(self.env_id)

    @property
    def customised(self) -> bool:
        """Whether kwargs or wrappers change the env gymnasium makes from the id."""
        return bool(self.kwargs or self.wrappers)

    def import_code(self) -> None:
        """Import `env_packages`, then the id's module (they register their ids)."""
        for package in self.packages:
            import_module(package, f"env_packages = {list(self.packages)!r}")
        module, _ = split_env_id(self.env_id)
        if module is not None:
            import_module(module, f"env_id = {self.env_id!r}")

    def spec(self) -> gym.envs.registration.EnvSpec:
        """The registered spec of the id, after importing the code that registers it."""
        self.import_code()
        try:
            return gym.spec(self.name)
        except gym.error.Error:
            close = difflib.get_close_matches(self.name, gym.registry.keys(), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            if not self.packages and ":" not in self.env_id:
                hint += " (an id your own code registers: name its module in env_packages or as 'module:EnvId')"
            raise ConfigError(f"env_id = {self.env_id!r}: not a registered gymnasium environment{hint}") from None

    def check_kwargs(self, spec: gym.envs.registration.EnvSpec) -> None:
        """Every `env_kwargs` key must be a keyword of the env's constructor (or `max_episode_steps`)."""
        if not self.kwargs or spec.entry_point is None:
            return
        creator = spec.entry_point if callable(spec.entry_point) else load_callable(spec.entry_point, f"env_id = {self.env_id!r}")
        try:
            parameters = inspect.signature(creator).parameters.values()
        except (TypeError, ValueError):  # a builtin or extension type: nothing to check against
            return
        if any(p.kind is p.VAR_KEYWORD for p in parameters):
            return
        accepted = [p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        accepted += [name for name in MAKE_KWARGS if name not in accepted]
        for key in self.kwargs:
            if key not in accepted:
                close = difflib.get_close_matches(key, accepted, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                shown = spec.entry_point if isinstance(spec.entry_point, str) else creator.__name__
                raise ConfigError(f"env_kwargs.{key}: not a keyword of {self.name} ({shown}){hint}; "
                                  f"accepted: {', '.join(accepted)}")

    def wrap(self, env: gym.Env, check: bool = True) -> gym.Env:
        """The user's wrappers in order, then flattening where needed, then (`check`) the
        observation check."""
        for k, entry in enumerate(self.wrappers):
            (path, kwargs), = entry.items()
            field = f"env_wrappers[{k}] = {path!r}"
            factory = load_callable(path, field)
            try:
                env = factory(env, **kwargs)
            except TypeError as error:
                raise ConfigError(f"{field}: {error}") from None
            if not isinstance(env, gym.Env):
                raise ConfigError(f"{field}: returned {type(env).__name__}, not a gymnasium env")
        if isinstance(env.observation_space, FLATTENED):
            try:
                flat = gym.spaces.flatten_space(env.observation_space)
            except (NotImplementedError, TypeError, ValueError):
                flat = None
            if not isinstance(flat, gym.spaces.Box):  # e.g. a Sequence or Graph inside
                raise ConfigError(
                    f"env_id = {self.env_id!r}: observations {env.observation_space} cannot be flattened into a "
                    "vector; add an env_wrappers entry that turns them into a Box"
                )
            env = gym.wrappers.FlattenObservation(env)
        return ObservationCheck(env, self.env_id) if check else env

    def make_vector(self, spec: gym.envs.registration.EnvSpec, num_envs: int) -> gym.vector.VectorEnv:
        """A SyncVectorEnv of `num_envs` made, wrapped and checked envs, resetting in the same step."""
        self.check_kwargs(spec)
        entry = spec.entry_point if isinstance(spec.entry_point, str) else getattr(spec.entry_point, "__module__", "")
        trusted = entry.startswith(TRUSTED_MODULES) and not self.wrappers  # spared the check's per-step cost
        return gym.make_vec(spec, num_envs=num_envs, vectorization_mode="sync",
                            vector_kwargs={"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP},
                            wrappers=[functools.partial(self.wrap, check=not trusted)], **self.kwargs)

    def refuse_customisation(self, why: str) -> None:
        if self.customised:
            fields = " and ".join(f for f, v in (("env_kwargs", self.kwargs), ("env_wrappers", self.wrappers)) if v)
            raise ConfigError(f"{fields}: not supported for env_id = {self.env_id!r} ({why})")


class ObservationCheck(gym.Wrapper):
    """Fails the run, naming the env, on an observation outside its space's shape or not finite
    (a NaN would otherwise surface much later as a diverged loss, far from its cause)."""

    def __init__(self, env: gym.Env, env_id: str):
        super().__init__(env)
        self.env_id, self.steps = env_id, 0

    def reset(self, **kwargs: Any):
        obs, info = self.env.reset(**kwargs)
        self.steps = 0
        return self._checked(obs, "reset"), info

    def step(self, action: Any):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.steps += 1
        return self._checked(obs, f"step {self.steps} of an episode"), reward, terminated, truncated, info

    def _checked(self, obs: Any, where: str) -> Any:
        array, shape = np.asarray(obs), self.observation_space.shape
        if array.shape != shape:
            raise EnvError(f"env {self.env_id!r}: {where} returned an observation of shape {array.shape}; "
                           f"its observation_space has shape {shape}")
        if array.dtype.kind in "fc" and not np.isfinite(array).all():
            raise EnvError(f"env {self.env_id!r}: {where} returned a non-finite observation {array.tolist()!r}")
        return obs


def graph_differences(config: Any) -> list[str]:
    """Why an in-graph env would not be the env gymnasium makes for `config` (empty: it would
    be, so the compiled loop may train on it): wrappers, kwargs the graph does not honour, or
    user code that registered its own env under a built-in id."""
    source = EnvSource.of(config)
    reasons = []
    if source.wrappers:
        reasons.append(f"env_wrappers = {[next(iter(w)) for w in source.wrappers]!r} change the env")
    other = sorted(set(source.kwargs) - GRAPH_KWARGS)
    if other:
        reasons.append(f"env_kwargs {other} change the env (the in-graph env honours only {sorted(GRAPH_KWARGS)})")
    source.import_code()
    name = source.name
    if name in _BUILTIN_SPECS and gym.registry.get(name) is not _BUILTIN_SPECS[name]:
        reasons.append(f"env_id = {config.env_id!r}: user code registered its own {name}")
    return reasons


def graph_env_for(config: Any):
    """The in-graph env of `config` (None where there is none), with the `max_episode_steps`
    it was given. Imports TensorFlow."""
    from dqn_tf.graph_envs import graph_env

    env = graph_env(registered_id(config.env_id))
    steps = config.env_kwargs.get("max_episode_steps")
    return env if env is None or steps is None else dataclasses.replace(env, max_episode_steps=int(steps))
