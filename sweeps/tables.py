"""Writes one session's results into the run folder (the layout: `sweeps.results`).

Finishing a trial writes its evaluations and episodes at once, as one small file each: a
driver killed a moment later has lost none of them. Every MERGE_EVERY trials, and when the
session ends, the session's trial files are merged into one batch file, so that a reader opens
a few hundred files at 10,000 trials rather than 20,000; each row is rewritten at most once.
The merge runs between events (`flush_due`), after the driver has refilled its slots.

The trials table is rebuilt from the study by a thread of its own, so that the driver never
waits for it (at 10,000 trials a rebuild takes a good fraction of a second): when something
changed, at most every TRIALS_EVERY_S seconds and never sooner than TRIALS_SHARE times as long
as the last rebuild took (its cost per trial stays flat however large the study grows), and
when the session ends. The journal, not this table, is the source of truth: a killed
session's table may be a few seconds behind, and the next session rewrites it.
"""

from __future__ import annotations

import threading
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
TRIALS_EVERY_S = 1.0
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
    """`trials.parquet`, rebuilt from `study` on a debounce by a thread (see the module notes)."""

    def __init__(self, path: Path, study: optuna.Study, every: float):
        self.path, self.study, self.every = path, study, every
        self.changed, self.stop = threading.Event(), threading.Event()
        self.changed.set()  # a session starts by writing the table as it finds the study
        self.error: Exception | None = None
        self.thread = threading.Thread(target=self.loop, name="trials-table", daemon=True)
        self.thread.start()

    def loop(self) -> None:
        due = 0.0
        while self.changed.wait() and not self.stop.wait(max(0.0, due - time.monotonic())):
            self.changed.clear()
            try:
                spent = self.write()
            except Exception as error:  # noqa: BLE001 - raised in the driver's thread (`check`)
                self.error = error
                return
            due = time.monotonic() + max(self.every, TRIALS_SHARE * spent)

    def write(self) -> float:
        """Rebuild the table now; the seconds it took."""
        began = time.perf_counter()
        write_atomic(trials_frame(self.study), self.path)
        return time.perf_counter() - began

    def check(self) -> None:
        """Raise what made the thread stop writing (a full disk, say), in the caller's thread."""
        if self.error is not None:
            raise self.error

    def close(self) -> None:
        """Stop the thread and write the table as the study has it now."""
        self.stop.set()
        self.changed.set()
        self.thread.join()
        self.check()
        self.write()


class ResultsWriter:
    """A session's writer of `study`'s results: `add_trial` per finished trial, `flush_due`
    between events, `close` at the end."""

    def __init__(self, run_dir: Path, study: optuna.Study, *, merge_every: int = MERGE_EVERY,
                 trials_every: float = TRIALS_EVERY_S):
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        session = uuid.uuid4().hex[:8]
        self.datasets = {name: Appender(self.run_dir / name, SCHEMAS[name], session) for name in DATASETS}
        self.trials = TrialsTable(self.run_dir / "trials.parquet", study, trials_every)
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
        self.trials.changed.set()

    def flush_due(self) -> None:
        """Merge full batches; raise what stopped the trials table's thread, if anything did."""
        for appender in self.datasets.values():
            if len(appender.unmerged) >= self.merge_every:
                appender.merge()
        self.trials.check()

    def close(self) -> None:
        """End of session: merge what is left and write the trials table as the study has it."""
        for appender in self.datasets.values():
            appender.merge()
        self.trials.close()
