"""Study files: YAML -> a validated `StudySpec`, failing before anything starts.

Every error names the file, the field path, the value given and what is allowed, and unknown
keys get a did-you-mean. The trainer's base config and every search-space key are checked
against `dqn_tf.config.TrainConfig` (which imports no TensorFlow) by building the configs at
the corners of the space; sampler and pruner options against their constructors.
"""

from __future__ import annotations

import difflib
import importlib.util
import inspect
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from dqn_tf.config import ConfigError, TrainConfig, field_names, parse_config
from dqn_tf.envs import check_env
from sweeps.study.components import (
    PRUNERS,
    SAMPLERS,
    Component,
    constructor_options,
    make_pruner,
    make_sampler,
)
from sweeps.study.files import read_mapping
from sweeps.study.heldout import DEFAULTS, baseline_config
from sweeps.study.space import with_params
from sweeps.study.spec import CategoricalParam, FloatParam, IntParam, SpecError, StudySpec


def load_spec(path: str | Path, overrides: dict[str, Any] | None = None,
              env_packages: Sequence[str] = ()) -> StudySpec:
    """Read and validate a study file; `overrides` (dotted paths) win over the file;
    `env_packages` (`--env-package`) are added to the file's. A baseline file
    (`heldout.baseline`) is named relative to the study file and must make a valid config."""
    path = Path(path)
    try:
        data = read_mapping(path, str(path), "study fields")
    except ValueError as error:
        raise SpecError(str(error)) from None
    for dotted, value in (overrides or {}).items():
        set_dotted(data, dotted, value)
    if env_packages:
        given = data.get("env_packages") or []
        data["env_packages"] = [*given, *env_packages] if isinstance(given, list) else given
    baseline = _lookup(data, ["heldout", "baseline"])
    if isinstance(baseline, str) and baseline != DEFAULTS:  # a file, named relative to the study file
        data["heldout"]["baseline"] = str((path.parent / baseline).resolve())
    spec = parse_spec(data, source=str(path))
    if spec.heldout is not None and spec.heldout.baseline is not None:
        try:
            baseline_config(spec, spec.heldout.baseline)
        except ValueError as error:
            raise SpecError(f"{path}: heldout.baseline = {baseline!r}: {error}") from None
    return spec


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
        for kind in typing.get_args(annotation) or (annotation,):  # `Heldout | None`: Heldout
            if inspect.isclass(kind) and issubclass(kind, BaseModel):
                return kind
    return None


def _lookup(data: Any, loc: list[Any]) -> Any:
    for part in loc:
        data = data.get(part) if isinstance(data, dict) else None
    return data


def check_trainer(spec: StudySpec, source: str) -> None:
    """Base config and every corner of the space must make a valid TrainConfig."""
    known = field_names()
    for key in spec.space:
        field, dot, keyword = key.partition(".")
        if dot and (field != "env_kwargs" or not keyword.isidentifier()):
            raise SpecError(f"{source}: space.{key}: only env_kwargs.KEYWORD may name a part of a field "
                            "(e.g. env_kwargs.max_steps: one keyword of the env)")
        if field not in known:
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
        values = with_params(base, corner)
        try:
            config = TrainConfig.from_dict(values)
            if any(key.startswith("env_") for key in corner):  # env_id, env_kwargs(.KEY), env_wrappers, ...
                check_env(config)
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
    sampler = SAMPLERS[spec.sampler.name]
    for package in sampler.needs:
        if importlib.util.find_spec(package) is None:
            raise SpecError(
                f"{source}: sampler.name = {spec.sampler.name!r}: needs the '{package}' package "
                f"(pip install {package}), or pick one of {', '.join(SAMPLERS)}"
            )
    check_options(sampler, spec.sampler.options, "sampler.options", source)
    check_options(PRUNERS[spec.pruner.name], spec.pruner.options, "pruner.options", source)
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


def check_options(component: Component, options: dict[str, Any], where: str, source: str) -> None:
    allowed = constructor_options(component)
    for key in options:
        if key not in allowed:
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise SpecError(
                f"{source}: {where}.{key}: not an option of {component.cls.__name__}{hint}; "
                f"allowed: {', '.join(allowed) or '(none)'}"
            )
