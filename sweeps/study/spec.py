"""The study file's schema: a `StudySpec` and its sections, as pydantic models.

Reading and checking a file (with errors that name the field, the value and what is allowed)
is `sweeps.study.loading`'s.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from sweeps.study.components import PRUNERS, SAMPLERS
from sweeps.study.resources import Resources

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"


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


class Storage(Strict):
    """How a driver shares the study's storage with other drivers (the URL itself is
    `--storage` or `$DQN_SWEEP_STORAGE`, never the study file: it may hold a password).

    A driver renews a lease on each trial it runs every `heartbeat` seconds; another driver
    takes a RUNNING trial over (FAIL "driver lost", re-queued once) only when its lease has not
    been renewed for `grace` seconds. A storage server that cannot be reached is retried with
    backoff for up to `outage` seconds, then the driver stops with an error (docs/storages.md).
    """

    heartbeat: int = Field(10, ge=1, description="seconds between lease renewals")
    grace: int = Field(60, ge=2, description="seconds without renewal before a trial is taken over")
    outage: float = Field(300.0, gt=0, description="seconds to wait for an unreachable storage server")

    @model_validator(mode="after")
    def _grace_outlasts_heartbeats(self) -> Storage:
        if self.grace < 2 * self.heartbeat:
            raise ValueError(f"grace = {self.grace} s must be at least twice heartbeat = {self.heartbeat} s "
                             "(a lease renewed a little late would be taken over)")
        return self


class Sampler(Strict):
    """An Optuna sampler; `options` go to its constructor (checked against its signature)."""

    name: Literal[tuple(SAMPLERS)] = "tpe"  # type: ignore[valid-type]
    seed: int | None = 0
    options: dict[str, Any] = {}


class Pruner(Strict):
    """An Optuna pruner; `options` go to its constructor (checked against its signature)."""

    name: Literal[tuple(PRUNERS)] = "median"  # type: ignore[valid-type]
    options: dict[str, Any] = {}


class Heldout(Strict):
    """The held-out phase (docs/heldout.md): once the tuning budget is spent, the `top_k` trials
    by tuning objective train again on `seeds` seeds no trial tuned on, and the answer is the one
    with the best held-out score. `baseline`: train this config on the same seeds too, to say
    whether tuning beat it: `defaults` (the study's `trainer:` fields, the trainer's defaults for
    every searched one), a YAML file of trainer fields (as `dqn-sweep best` writes), or null."""

    top_k: int = Field(2, ge=1)
    seeds: int = Field(5, ge=2, description="held-out seeds per config (at least; never fewer than before)")
    baseline: str | None = None


class StudySpec(Strict):
    """A whole study: what to train, what to search, how to judge and how much to spend."""

    study: str = Field(pattern=NAME_PATTERN)
    env_id: str | None = None
    env_packages: list[str] = Field([], description="modules imported before the env is made (they register its id)")
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
    storage: Storage = Storage()
    heldout: Heldout | None = Field(Heldout(), description="false: no held-out phase")

    @field_validator("heldout", mode="before")
    @classmethod
    def _heldout_switch(cls, value: Any) -> Any:
        """`heldout: false` turns the phase off, `true` takes the defaults."""
        if value is False:
            return None
        if value is True:
            return {}
        if value is not None and not isinstance(value, (dict, Heldout)):
            raise ValueError("allowed: false (no held-out phase), true, or a mapping of top_k, seeds, baseline")
        return value

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
        """The trainer fields every trial starts from (`env_id` and `env_packages` folded in)."""
        base = dict(self.trainer)
        if self.env_id is not None:
            base["env_id"] = self.env_id
        if self.env_packages:
            base["env_packages"] = list(dict.fromkeys([*self.env_packages, *(base.get("env_packages") or [])]))
        if self.resources.gpus and base.get("devices", "auto") == "auto":
            base["devices"] = f"gpu:{self.resources.gpus}" if self.resources.gpus > 1 else "gpu"
        return base
