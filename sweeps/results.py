"""The run folder's tables: trials, evals and episodes as Parquet, written atomically.

`runs/<study>/trials.parquet` has one row per trial (rebuilt from the Optuna study, the source
of truth); `evals.parquet` and `episodes.parquet` gain rows as trials finish. Every write goes
to a temporary file that replaces the old one, so a kill at any moment leaves readable tables.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import optuna
import pandas as pd

TABLES = ("trials", "evals", "episodes")
# step: the eval_freq boundary the evaluation belongs to (comparable across seeds); env_steps:
# the member's own counter when it evaluated (not aligned when n_envs does not divide eval_freq).
EVAL_COLUMNS = ["trial", "seed", "step", "mean_return", "std_return", "min_return", "max_return", "env_steps"]
EPISODE_COLUMNS = ["trial", "seed", "episode", "step", "return", "length"]
ATTR_COLUMNS = [
    "seeds", "env_steps", "wall_seconds", "train_seconds", "startup_seconds", "steps_per_second",
    "worker", "packed_with", "fail_reason", "retries", "resumed_from_step", "requeued_from",
    "finished_when_asked", "sampler_seed", "checkpoint_saves", "checkpoint_seconds_per_save", "checkpoint_bytes",
    "process_reused", "process_tasks", "process_rss_mb",
]


def write_atomic(frame: pd.DataFrame, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    frame.to_parquet(tmp, index=False)
    os.replace(tmp, path)


def load(run_dir: str | Path) -> dict[str, pd.DataFrame]:
    """The run folder's tables as DataFrames (empty frames for tables not written yet)."""
    run_dir = Path(run_dir)
    empty = {"trials": [], "evals": EVAL_COLUMNS, "episodes": EPISODE_COLUMNS}
    return {
        name: pd.read_parquet(run_dir / f"{name}.parquet")
        if (run_dir / f"{name}.parquet").exists()
        else pd.DataFrame(columns=empty[name])
        for name in TABLES
    }


def trials_frame(study: optuna.Study) -> pd.DataFrame:
    """One row per trial: number, state, objective, each param, and our per-trial attributes."""
    rows = []
    for trial in study.get_trials(deepcopy=False):
        row: dict[str, Any] = {
            "number": trial.number,
            "state": trial.state.name,
            "value": trial.value,
            "datetime_start": trial.datetime_start,
            "datetime_complete": trial.datetime_complete,
        }
        row.update({f"params_{k}": v for k, v in trial.params.items()})
        row.update({k: trial.user_attrs.get(k) for k in ATTR_COLUMNS})
        row["last_step"] = max(trial.intermediate_values, default=None)
        rows.append(row)
    return pd.DataFrame(rows)


class ResultsWriter:
    """Appends a finished trial's evals and episodes and rewrites the trials table."""

    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        tables = load(self.run_dir)
        self.evals, self.episodes = tables["evals"], tables["episodes"]

    def add_trial(self, study: optuna.Study, number: int, runs: dict[int, dict[str, Any]]) -> None:
        """`runs`: seed -> {"evals": [...], "episodes": [...]} of trial `number`."""
        evals = [
            {"trial": number, "seed": seed, **{k: e.get(k) for k in EVAL_COLUMNS[2:]}}
            for seed, run in runs.items()
            for e in run.get("evals", [])
        ]
        episodes = [
            {"trial": number, "seed": seed, **{k: e.get(k) for k in EPISODE_COLUMNS[2:]}}
            for seed, run in runs.items()
            for e in run.get("episodes", [])
        ]
        self.evals = concat(self.evals, pd.DataFrame(evals, columns=EVAL_COLUMNS), number)
        self.episodes = concat(self.episodes, pd.DataFrame(episodes, columns=EPISODE_COLUMNS), number)
        write_atomic(self.evals, self.run_dir / "evals.parquet")
        write_atomic(self.episodes, self.run_dir / "episodes.parquet")
        self.write_trials(study)

    def write_trials(self, study: optuna.Study) -> None:
        write_atomic(trials_frame(study), self.run_dir / "trials.parquet")


def concat(old: pd.DataFrame, new: pd.DataFrame, number: int) -> pd.DataFrame:
    """Append `new`, replacing rows an earlier write had for the same trial."""
    kept = old[old["trial"] != number] if len(old) else old
    frames = [f for f in (kept, new) if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else new
