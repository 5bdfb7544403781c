"""A study's `resources:` section: what one task holds on its worker, which of the worker's
environment variables its trial process gets, and how the worker's trial processes are reused."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from sweeps.secrets import STORAGE_ENV

ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Variables each task sets itself from cpu_threads and gpus (`sweeps.worker.environment.child_env`).
SET_BY_TASK = ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS", "CUDA_VISIBLE_DEVICES",
               "PYTHONUNBUFFERED")


def env_name_problem(name: object) -> str | None:
    """Why `name` cannot be passed to a trial through `resources.env`, or None if it can."""
    if not isinstance(name, str) or not ENV_NAME.fullmatch(name):
        return (f"{name!r} is not an environment variable name: use letters, digits and '_', "
                "not starting with a digit")
    if name == STORAGE_ENV:
        return (f"{name} holds the storage URL and its password; trials never get it (the driver owns "
                "the storage); allowed: any other variable name")
    if name in SET_BY_TASK:
        return (f"{name} is set for each trial from resources.cpu_threads and resources.gpus; "
                "allowed: any other variable name")
    return None


class Resources(BaseModel):
    """What one run of a trial (its seeds as a population, or one seed) holds on its worker.

    `gpus` > 0 reserves Dask resource `GPU` (start workers with `--resources GPU=N`) and pins
    that many distinct GPU ids; `cpu_threads` sizes TensorFlow's thread pools ("auto": the
    worker's cores divided by the runs it executes at once); `time_limit` (seconds) fails a
    run that takes longer. `env` names more of the worker's environment variables for the
    trial's child process, which otherwise gets only an allowlist (`sweeps.worker.environment`).

    Warm processes: with `reuse_processes` a worker runs its next task in the child process its
    last task used (TensorFlow already imported: start-up drops from seconds to milliseconds),
    when the task's GPU ids, threads, environment and trainer `devices` are the same; a process
    that crashed, hung or timed out is never reused. A process is retired after
    `max_tasks_per_process` tasks, or once its memory (RSS, measured after each task) reaches
    `max_process_rss_mb` (null: no limit), so that what a long-lived TensorFlow process
    accumulates is bounded. `reuse_processes: false` gives every task a fresh process.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    gpus: int = Field(0, ge=0)
    cpu_threads: int | Literal["auto"] = "auto"
    time_limit: float | None = Field(None, gt=0)
    env: list[str] = Field([], description="worker environment variables the trial's child also gets")
    reuse_processes: bool = Field(True, description="run a worker's next task in its warm trial process")
    max_tasks_per_process: int = Field(50, ge=1, description="tasks a warm process runs before it is retired")
    max_process_rss_mb: float | None = Field(4096, gt=0, description="MiB of RSS after a task that retire a process")

    @field_validator("env")
    @classmethod
    def _env_names(cls, names: list[str]) -> list[str]:
        for name in names:
            if (problem := env_name_problem(name)) is not None:
                raise ValueError(problem)
        return names

    @model_validator(mode="after")
    def _positive_threads(self) -> Resources:
        if isinstance(self.cpu_threads, int) and self.cpu_threads < 1:
            raise ValueError(f"cpu_threads = {self.cpu_threads}: use an integer >= 1 or 'auto'")
        return self

    @model_validator(mode="after")
    def _limits_need_reuse(self) -> Resources:
        limits = sorted({"max_tasks_per_process", "max_process_rss_mb"} & self.model_fields_set)
        if not self.reuse_processes and limits:
            raise ValueError(f"{' and '.join(limits)} limit warm processes, but reuse_processes is false "
                             "(every task gets a fresh process); set reuse_processes: true or drop the limits")
        return self

    def process_limits(self) -> dict[str, Any] | None:
        """When a task's warm process is retired (None: never reused), for the task payload."""
        if not self.reuse_processes:
            return None
        return {"max_tasks": self.max_tasks_per_process, "max_rss_mb": self.max_process_rss_mb}
