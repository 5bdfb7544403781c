"""Writes one session's results into the run folder (the layout is `sweeps.results`').

Finishing a trial writes its evaluations and episodes at once, as one small file each: a
driver killed a moment later has lost none of them. Every MERGE_EVERY trials, and when the
session ends, the session's trial files are merged into one batch file, so that a reader opens
a few hundred files at 10,000 trials rather than 20,000; each row is rewritten at most once.
The merge runs between events (`flush_due`), after the driver has refilled its slots.

The trials table is rebuilt from the study when something changed, at most every
TRIALS_EVERY_S seconds and never sooner than TRIALS_SHARE times as long as the last rebuild
took (so its cost per trial stays flat however large the study grows), and when the session
ends. The journal, not this table, is the source of truth: a killed session's table may be
a few seconds behind, and the next session rewrites it.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import optuna
import pyarrow as pa

from sweeps.results import (
    BATCH_FILE,
    COLUMNS,
    DATASETS,
    SCHEMAS,
    TRIAL_FILE,
    trials_frame,
    write_atomic,
)

MERGE_EVERY = 256
TRIALS_EVERY_S = 5.0
TRIALS_SHARE = 50


class Appender:
    """One dataset folder (`evals/` or `episodes/`): a file per trial, merged into batches."""

    def __init__(self, folder: Path, schema: pa.Schema, session: str):
        self.folder, self.schema, self.session = folder, schema, session
        self.folder.mkdir(parents=True, exist_ok=True)
        self.unmerged: list[tuple[Path, pa.Table]] = []  # this session's trial files
        self.batches = 0

    def add(self, number: int, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        table = pa.Table.from_pylist(rows, schema=self.schema)
        path = self.folder / f"{TRIAL_FILE}{number}.parquet"
        write_atomic(table, path)
        self.unmerged.append((path, table))

    def merge(self) -> None:
        """This session's trial files as one batch file (written first: readers prefer it)."""
        if len(self.unmerged) < 2:
            return
        path = self.folder / f"{BATCH_FILE}{self.session}-{self.batches:05d}.parquet"
        write_atomic(pa.concat_tables([table for _, table in self.unmerged]), path)
        self.batches += 1
        for part, _ in self.unmerged:
            part.unlink(missing_ok=True)
        self.unmerged.clear()


class TrialsTable:
    """`trials.parquet`, rebuilt from the study on a debounce (see the module notes)."""

    def __init__(self, path: Path, every: float):
        self.path, self.every = path, every
        self.dirty = True
        self.next_write = 0.0

    def due_in(self) -> float | None:
        """Seconds until a rebuild is due (None: nothing changed since the last one)."""
        return max(0.0, self.next_write - time.monotonic()) if self.dirty else None

    def write(self, study: optuna.Study) -> None:
        began = time.perf_counter()
        write_atomic(trials_frame(study), self.path)
        spent = time.perf_counter() - began
        self.dirty = False
        self.next_write = time.monotonic() + max(self.every, TRIALS_SHARE * spent)


class ResultsWriter:
    """A session's writer: `add_trial` per finished trial, `flush_due` between events, `close` at the end."""

    def __init__(self, run_dir: Path, *, merge_every: int = MERGE_EVERY, trials_every: float = TRIALS_EVERY_S):
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        session = uuid.uuid4().hex[:8]
        self.datasets = {name: Appender(self.run_dir / name, SCHEMAS[name], session) for name in DATASETS}
        self.trials = TrialsTable(self.run_dir / "trials.parquet", trials_every)
        self.merge_every = merge_every

    def add_trial(self, number: int, runs: dict[int, dict[str, Any]]) -> None:
        """`runs`: seed -> {"evals": [...], "episodes": [...]} of trial `number`."""
        for name, appender in self.datasets.items():
            fields = COLUMNS[name][2:]
            appender.add(number, [{"trial": number, "seed": seed, **{k: row.get(k) for k in fields}}
                                  for seed, run in runs.items() for row in run.get(name) or []])
        self.changed()

    def changed(self) -> None:
        """The study changed (a trial was asked or told): the trials table is due a rebuild."""
        self.trials.dirty = True

    def due_in(self) -> float | None:
        return self.trials.due_in()

    def flush_due(self, study: optuna.Study) -> None:
        """Merge full batches and rebuild the trials table if it is due."""
        for appender in self.datasets.values():
            if len(appender.unmerged) >= self.merge_every:
                appender.merge()
        if self.trials.due_in() == 0.0:
            self.trials.write(study)

    def close(self, study: optuna.Study) -> None:
        """End of session: merge what is left and write the trials table as the study has it."""
        for appender in self.datasets.values():
            appender.merge()
        self.trials.write(study)
