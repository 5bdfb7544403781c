"""Study files: YAML -> a validated `StudySpec`, failing before anything starts.

Every error names the file, the field path, the value given and what is allowed, and unknown
keys get a did-you-mean. The trainer's base config and every search-space key are checked
against `dqn_tf.config.TrainConfig` (which imports no TensorFlow) by building the configs at
the corners of the space.
"""

from __future__ import annotations

import difflib
import importlib.util
import inspect
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from dqn_tf.config import ConfigError, TrainConfig, field_names, parse_config
from dqn_tf.envs import check_env
from sweeps.resources import Resources

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
SAMPLERS = ("tpe", "random", "cmaes", "gp", "qmc", "grid")
PRUNERS = ("median", "percentile", "successive_halving", "hyperband", "none")
# Optional packages some samplers need; checked up front so a sweep never dies at its first ask.
SAMPLER_NEEDS = {"cmaes": ("cmaes",), "qmc": ("scipy",), "gp": ("torch", "scipy")}


class SpecError(ValueError):
    """A study file is invalid; the message names file, field, value and what is allowed."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FloatParam(Strict):
    """A float searched in [low, high], optionally on a log scale or a grid of `step`."""

    type: Literal["float"]
    low: float
    high: float
    log: bool = False
    step: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _bounds(self) -> FloatParam:
        check_bounds(self.low, self.high, self.log, self.step)
        return self


class IntParam(Strict):
    """An integer searched in [low, high] (inclusive), optionally log-scaled or stepped."""

    type: Literal["int"]
    low: int
    high: int
    log: bool = False
    step: int = Field(1, ge=1)

    @model_validator(mode="after")
    def _bounds(self) -> IntParam:
        check_bounds(self.low, self.high, self.log, None if self.step == 1 else self.step)
        return self


class CategoricalParam(Strict):
    """One of `choices`; lists (e.g. `net_arch` layer sizes) are allowed as choices."""

    type: Literal["categorical"]
    choices: list[Any] = Field(min_length=1)


Param = Annotated[FloatParam | IntParam | CategoricalParam, Field(discriminator="type")]


def check_bounds(low: float, high: float, log: bool, step: float | None) -> None:
    if low > high:
        raise ValueError(f"low = {low} must be <= high = {high}")
    if log and low <= 0:
        raise ValueError(f"log scale needs low > 0, got low = {low}")
    if log and step is not None:
        raise ValueError("log and step cannot be combined (Optuna allows one or the other)")


class Objective(Strict):
    """Which number of the evaluation curve a trial is judged by, and how seeds combine.

    `final`: the last evaluation; `last_k`: mean of the last k evaluations (robust to one lucky
    evaluation); `auc`: the area under the curve divided by its length (rewards learning fast).
    """

    metric: Literal["final", "last_k", "auc"] = "last_k"
    k: int = Field(3, ge=1)
    seed_aggregate: Literal["mean", "iqm"] = "mean"


class Budget(Strict):
    """When the sweep stops: `n_trials` finished (COMPLETE or PRUNED) trials and/or a timeout.

    Failed trials do not count; `max_failed` stops a sweep whose trials all fail.
    `max_retries` reruns a run whose worker died (a lost node is not the trial's fault).
    """

    n_trials: int | None = Field(20, ge=1)
    timeout: float | None = Field(None, gt=0, description="seconds; no new trials after it")
    max_failed: int | None = Field(None, ge=0, description="default: n_trials (or 100)")
    max_retries: int = Field(2, ge=0, description="reruns of a run whose worker died")

    @model_validator(mode="after")
    def _some_limit(self) -> Budget:
        if self.n_trials is None and self.timeout is None:
            raise ValueError("set n_trials, timeout or both (otherwise the sweep never ends)")
        return self


class Sampler(Strict):
    """An Optuna sampler; `options` go to its constructor (checked against its signature)."""

    name: Literal["tpe", "random", "cmaes", "gp", "qmc", "grid"] = "tpe"
    seed: int | None = 0
    options: dict[str, Any] = {}


class Pruner(Strict):
    """An Optuna pruner; `options` go to its constructor (checked against its signature)."""

    name: Literal["median", "percentile", "successive_halving", "hyperband", "none"] = "median"
    options: dict[str, Any] = {}


class StudySpec(Strict):
    """A whole study: what to train, what to search, how to judge and how much to spend."""

    study: str = Field(pattern=NAME_PATTERN)
    env_id: str | None = None
    trainer: dict[str, Any] = {}
    space: dict[str, Param] = Field(min_length=1)
    objective: Objective = Objective()
    seeds: int | list[int] = 1
    budget: Budget = Budget()
    population: bool = Field(True, description="train a trial's seeds together in one task")
    pack: int = Field(1, ge=1, description="up to this many same-shaped trials share one task")
    parallel: int = Field(2, ge=1, description="tasks in flight at once")
    sampler: Sampler = Sampler()
    pruner: Pruner = Pruner()
    resources: Resources = Resources()

    @property
    def seed_list(self) -> list[int]:
        """Seeds every trial trains with (the same for all trials: common random numbers)."""
        if isinstance(self.seeds, list):
            return list(self.seeds)
        base = int(self.trainer.get("seed", 0))
        return [base + i for i in range(self.seeds)]

    @field_validator("pack")
    @classmethod
    def _pack_needs_population(cls, pack: int, info: ValidationInfo) -> int:
        if pack > 1 and info.data.get("population") is False:
            raise ValueError("packed trials train as one population: set population: true, or pack: 1")
        return pack

    def base_config(self) -> dict[str, Any]:
        """The trainer fields every trial starts from (`env_id` folded in)."""
        base = dict(self.trainer)
        if self.env_id is not None:
            base["env_id"] = self.env_id
        if self.resources.gpus and base.get("devices", "auto") == "auto":
            base["devices"] = f"gpu:{self.resources.gpus}" if self.resources.gpus > 1 else "gpu"
        return base


def load_spec(path: str | Path, overrides: dict[str, Any] | None = None) -> StudySpec:
    """Read and validate a study file; `overrides` (dotted paths) win over the file."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as error:
        raise SpecError(f"{path}: cannot read study file ({error.strerror})") from None
    except yaml.YAMLError as error:
        raise SpecError(f"{path}: not valid YAML ({error})") from None
    if not isinstance(data, dict):
        raise SpecError(f"{path}: expected a mapping of study fields, got {type(data).__name__}")
    for dotted, value in (overrides or {}).items():
        set_dotted(data, dotted, value)
    return parse_spec(data, source=str(path))


def set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    for key in parents:
        data = data.setdefault(key, {})
    data[leaf] = value


def parse_spec(data: dict[str, Any], source: str = "<study>") -> StudySpec:
    """Validate plain data as a study; raise SpecError naming `source` on the first problems."""
    try:
        spec = StudySpec.model_validate(data)
    except ValidationError as error:
        raise SpecError(format_errors(error, data, source)) from None
    check_trainer(spec, source)
    check_components(spec, source)
    return spec


def format_errors(error: ValidationError, data: dict[str, Any], source: str) -> str:
    lines = []
    for item in error.errors():
        loc = [part for part in item["loc"] if not _is_union_tag(part)]
        path = ".".join(str(part) for part in loc) or "(top level)"
        if item["type"] == "extra_forbidden":
            lines.append(f"{source}: {path}: unknown key{did_you_mean(loc, data)}")
            continue
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "union_tag_invalid" or item["type"] == "union_tag_not_found":
            message = "set type to one of 'float', 'int', 'categorical'"
        lines.append(f"{source}: {path} = {item.get('input')!r}: {message}")
    return "; ".join(lines)


def _is_union_tag(part: Any) -> bool:
    """Pydantic puts the discriminator value and validator names in error paths; users don't care."""
    return part in ("float", "int", "categorical") or (
        isinstance(part, str) and part.startswith("function-after[")
    )


def did_you_mean(loc: list[Any], data: dict[str, Any]) -> str:
    """Suggest the closest allowed key for an unknown one at `loc`, and list the allowed ones."""
    owner = _model_for(loc, data)
    if owner is None:
        return ""
    allowed = list(owner.model_fields)
    close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return f"{hint}; allowed: {', '.join(allowed)}"


def _model_for(loc: list[Any], data: dict[str, Any]) -> type[BaseModel] | None:
    """The pydantic model that owns the key at `loc` (resolving search-space param types)."""
    if len(loc) == 1:
        return StudySpec
    if loc[0] == "space" and len(loc) == 3:
        kind = _lookup(data, loc[:2]).get("type") if isinstance(_lookup(data, loc[:2]), dict) else None
        return {"float": FloatParam, "int": IntParam, "categorical": CategoricalParam}.get(kind)
    if len(loc) == 2:
        annotation = StudySpec.model_fields[str(loc[0])].annotation
        return annotation if inspect.isclass(annotation) and issubclass(annotation, BaseModel) else None
    return None


def _lookup(data: Any, loc: list[Any]) -> Any:
    for part in loc:
        data = data.get(part) if isinstance(data, dict) else None
    return data


def check_trainer(spec: StudySpec, source: str) -> None:
    """Base config and every corner of the space must make a valid TrainConfig."""
    known = field_names()
    for key in spec.space:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise SpecError(
                f"{source}: space.{key}: not a trainer field{hint}; allowed: {', '.join(known)}"
            )
        if key == "seed":
            raise SpecError(f"{source}: space.seed: seeds are set by `seeds:`, not searched")
    if spec.resources.gpus and spec.trainer.get("devices", "auto") not in ("auto", "gpu", f"gpu:{spec.resources.gpus}"):
        raise SpecError(
            f"{source}: trainer.devices = {spec.trainer['devices']!r}: with resources.gpus = "
            f"{spec.resources.gpus} leave devices as 'auto' (the trial trains on exactly its GPUs)"
        )
    base = spec.base_config()
    try:
        config = parse_config(base)
    except ConfigError as error:
        raise SpecError(f"{source}: trainer: {error}") from None
    if config.eval_freq == 0 and "eval_freq" not in spec.space:
        raise SpecError(f"{source}: trainer.eval_freq = 0: the objective and pruning need evaluations; use > 0")
    for corner in corners(spec):
        values = {**base, **corner}
        try:
            config = TrainConfig.from_dict(values)
            if "env_id" in corner:
                check_env(config.env_id)
        except ConfigError as error:
            shown = ", ".join(f"{k}={v!r}" for k, v in corner.items())
            raise SpecError(f"{source}: space: with {shown}: {error}") from None


def corners(spec: StudySpec) -> list[dict[str, Any]]:
    """Low and high ends of every numeric range, and every categorical choice, one at a time.

    Changing one key at a time keeps this linear in the space size while still catching every
    value the trainer would reject on its own; cross-field rules are checked per trial.
    """
    out: list[dict[str, Any]] = []
    for key, param in spec.space.items():
        values = param.choices if isinstance(param, CategoricalParam) else [param.low, param.high]
        out.extend({key: value} for value in values)
    return out


def check_components(spec: StudySpec, source: str) -> None:
    """Sampler/pruner options must match their constructors; optional packages must exist."""
    from sweeps.search import PRUNER_CLASSES, SAMPLER_CLASSES, make_pruner, make_sampler

    for package in SAMPLER_NEEDS.get(spec.sampler.name, ()):
        if importlib.util.find_spec(package) is None:
            raise SpecError(
                f"{source}: sampler.name = {spec.sampler.name!r}: needs the '{package}' package "
                f"(pip install {package}), or pick one of {', '.join(SAMPLERS)}"
            )
    check_options(SAMPLER_CLASSES[spec.sampler.name], spec.sampler.options, "sampler.options", source,
                  reserved=("seed", "search_space", "constant_liar"))
    check_options(PRUNER_CLASSES[spec.pruner.name], spec.pruner.options, "pruner.options", source)
    if spec.sampler.name == "grid":
        for key, param in spec.space.items():
            if isinstance(param, FloatParam) and param.step is None:
                raise SpecError(
                    f"{source}: space.{key}: the grid sampler needs a finite grid; give this "
                    "float a step or make it categorical"
                )
    if spec.pruner.name == "percentile" and "percentile" not in spec.pruner.options:
        raise SpecError(f"{source}: pruner.options.percentile: required by the percentile pruner (0-100)")
    for where, build in (("sampler", make_sampler), ("pruner", make_pruner)):
        try:
            build(spec)
        except (TypeError, ValueError) as error:
            options = getattr(spec, where).options
            raise SpecError(f"{source}: {where}.options = {options!r}: {error}") from None


def check_options(cls: type, options: dict[str, Any], where: str, source: str, reserved: tuple[str, ...] = ()) -> None:
    allowed = [
        name for name, p in inspect.signature(cls).parameters.items()
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and name not in reserved
    ]
    for key in options:
        if key not in allowed:
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise SpecError(
                f"{source}: {where}.{key}: not an option of {cls.__name__}{hint}; "
                f"allowed: {', '.join(allowed) or '(none)'}"
            )


def grid_size(spec: StudySpec) -> int:
    """Number of points of a grid search over the space."""
    size = 1
    for param in spec.space.values():
        if isinstance(param, CategoricalParam):
            size *= len(param.choices)
        else:
            size *= round((param.high - param.low) / (param.step or 1)) + 1
    return size
