"""The run folder's tables and how they are read: trials, evals and episodes as Parquet, read by
`load` (the public `sweeps.results.load`).

`trials.parquet` has one row per trial, built from the Optuna study (the source of truth).
Evaluations and training episodes are append-only datasets, so that finishing a trial costs the
same at trial 10 as at trial 10,000: `evals/` and `episodes/` hold part files of the trials
finished within a second or so (`part-<session>-<k>.parquet`), merged by the writer every so
many trials into a batch file (`batch-<session>-<k>.parquet`; `sweeps.store.writer`). Older versions
wrote a file per trial (`trial-<n>.parquet`, read as part files) or one file per table
(`evals.parquet`, `episodes.parquet`); `load` reads those too, so every run folder loads.

`heldout/` holds the held-out phase's evaluations (docs/heldout.md), written the same way: one
row per evaluation of a config (`config` "trial N" or "baseline", `trial` N or null) on a
held-out seed, for the runs that trained to the end.

A trial's rows (a held-out run's: a config's seed) come from one file only: a kill between
writing a batch and removing the part files it merged leaves both, and the batch wins. Every file is written under a temporary name
and renamed, so a kill at any moment leaves complete files only.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
import pyarrow as pa

from sweeps.study.heldout import FIGURES_ATTR, label

TABLES = ("trials", "evals", "episodes", "heldout")
DATASETS = ("evals", "episodes", "heldout")
# step: the eval_freq boundary the evaluation belongs to (comparable across seeds); env_steps:
# the member's own counter when it evaluated (not aligned when n_envs does not divide eval_freq).
EVAL_COLUMNS = ["trial", "seed", "step", "mean_return", "std_return", "min_return", "max_return", "env_steps"]
EPISODE_COLUMNS = ["trial", "seed", "episode", "step", "return", "length"]
HELDOUT_COLUMNS = ["config", *EVAL_COLUMNS]
COLUMNS = {"evals": EVAL_COLUMNS, "episodes": EPISODE_COLUMNS, "heldout": HELDOUT_COLUMNS}
RUN_KEYS = {"evals": ["trial"], "episodes": ["trial"], "heldout": ["config", "seed"]}  # rows from one file
SCHEMAS = {
    "evals": pa.schema([("trial", pa.int64()), ("seed", pa.int64()), ("step", pa.int64()),
                        ("mean_return", pa.float64()), ("std_return", pa.float64()),
                        ("min_return", pa.float64()), ("max_return", pa.float64()), ("env_steps", pa.int64())]),
    "episodes": pa.schema([("trial", pa.int64()), ("seed", pa.int64()), ("episode", pa.int64()),
                           ("step", pa.int64()), ("return", pa.float64()), ("length", pa.int64())]),
}
SCHEMAS["heldout"] = pa.schema([("config", pa.string()), *SCHEMAS["evals"]])
# Per-trial attributes the driver records (trial user attrs) that become trials-table columns.
ATTR_COLUMNS = [
    "seeds", "env_steps", "wall_seconds", "train_seconds", "startup_seconds", "steps_per_second",
    "worker", "packed_with", "fail_reason", "retries", "resumed_from_step", "requeued_from",
    "finished_when_asked", "sampler_seed", "checkpoint_saves", "checkpoint_seconds_per_save", "checkpoint_bytes",
    "process_reused", "process_tasks", "process_rss_mb", "loop", "resumed_exactly",
]
# The held-out phase's figures of the trials it retrained (`sweeps.study.scores.FIGURES`, and why
# runs failed): study user attrs `heldout:figures:trial <n>` (Optuna keeps a finished trial's own
# attrs closed), columns `heldout_<figure>` of the trials table.
HELDOUT_FIGURES = ["value", "seeds", "mean", "mean_low", "mean_high", "iqm", "iqm_low", "iqm_high",
                   "vs_baseline", "vs_baseline_low", "vs_baseline_high", "fail_reason"]
PART_FILE, BATCH_FILE = "part-", "batch-"


class ResultsError(ValueError):
    """A run folder's table cannot be read (says which file and what to do)."""


def load(run_dir: str | Path, *, tables: Iterable[str] = TABLES,
         trials: Collection[int] | None = None) -> dict[str, pd.DataFrame]:
    """The run folder's tables as DataFrames (empty frames for tables not written yet).

    `tables`: which to read (default all four); `trials`: only these trials' evals, episodes
    and held-out runs (the report draws the top few curves of a 10,000-trial sweep).
    """
    run_dir = Path(run_dir)
    out = {}
    for name in tables:
        if name == "trials":
            path = run_dir / "trials.parquet"
            out[name] = read_file(path) if path.exists() else pd.DataFrame(columns=[])
        else:
            out[name] = read_dataset(run_dir, name, trials)
    return out


def dataset_files(run_dir: Path, name: str) -> list[Path]:
    """The files of one dataset, lowest precedence first: the single file of older versions,
    then part files (and the `trial-<n>` files of the version before), then batch files (each
    in name order)."""
    folder = Path(run_dir) / name
    files = sorted(folder.glob("*.parquet")) if folder.is_dir() else []
    legacy = [Path(run_dir) / f"{name}.parquet"]
    return ([p for p in legacy if p.exists()] + [p for p in files if not p.name.startswith(BATCH_FILE)]
            + [p for p in files if p.name.startswith(BATCH_FILE)])


def read_dataset(run_dir: Path, name: str, trials: Collection[int] | None = None) -> pd.DataFrame:
    """One dataset as a frame sorted by trial, each trial's (held-out run's) rows from one file
    only."""
    wanted = None if trials is None else np.asarray(sorted(trials), dtype=np.int64)
    seen = None
    frames = []
    for path in reversed(dataset_files(run_dir, name)):  # highest precedence first
        frame = read_file(path)
        if frame.empty or "trial" not in frame:
            continue
        keys = run_keys(frame, name)
        keep = np.ones(len(frame), dtype=bool) if seen is None else ~np.isin(keys, seen)
        if wanted is not None:
            keep &= np.isin(frame["trial"].to_numpy(), wanted)
        seen = keys if seen is None else np.union1d(seen, keys)
        if keep.any():
            frames.append(frame[keep])
    if not frames:
        return pd.DataFrame(columns=COLUMNS[name])
    frame = pd.concat(frames[::-1], ignore_index=True)
    columns = COLUMNS[name] + [c for c in frame.columns if c not in COLUMNS[name]]
    frame = frame.reindex(columns=columns).sort_values("trial", kind="stable")
    if name == "heldout":
        frame["trial"] = frame["trial"].astype("Int64")  # null for the baseline
    return frame.reset_index(drop=True)


def run_keys(frame: pd.DataFrame, name: str) -> np.ndarray:
    """What names a run's rows in one dataset (`RUN_KEYS`): the trial, or a held-out run's
    config and seed."""
    if len(RUN_KEYS[name]) == 1:
        return frame[RUN_KEYS[name][0]].to_numpy()
    return frame[RUN_KEYS[name]].astype(str).agg("/".join, axis=1).to_numpy(dtype=object)


def read_file(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except (OSError, pa.ArrowException) as error:
        raise ResultsError(
            f"{path}: cannot read this table ({type(error).__name__}: {error}); move the file "
            "aside to load the rest (each file holds whole trials)"
        ) from None


def trial_row(trial: optuna.trial.FrozenTrial, heldout: dict[str, Any] | None = None) -> dict[str, Any]:
    """A trial's row: number, state, objective, each param, our per-trial attributes and its
    held-out figures (`heldout`, when the held-out phase retrained it)."""
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
    row.update({f"heldout_{k}": (heldout or {}).get(k) for k in HELDOUT_FIGURES})
    return row


def trials_frame(study: optuna.Study) -> pd.DataFrame:
    """One row per trial of the study (see `trial_row`)."""
    attrs = study.user_attrs
    return pd.DataFrame([trial_row(trial, attrs.get(FIGURES_ATTR + label(trial.number)))
                         for trial in study.get_trials(deepcopy=False)])
