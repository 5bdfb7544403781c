"""Writes one session's results into the run folder (the layout: `sweeps.results`).

The driver hands over a finished trial's evaluations and episodes (`add_trial`) and goes on: a
thread of this writer writes whatever has come in as one part file per dataset, at most every
FLUSH_EVERY_S seconds, so that the driver's cost per trial is a list append, and a sweep
finishing 16 trials a second writes one file a second per dataset instead of sixteen. Every
MERGE_EVERY trials, and when the session ends, the session's part files are merged into one
batch file (a reader opens a few dozen files at 10,000 trials); each row is rewritten at most
once. A driver killed outright loses the rows of the trials it finished in the last
FLUSH_EVERY_S seconds (their values are in the journal); Ctrl-C and errors end the session
through `close`, which writes everything.

The same thread rebuilds the trials table from the study: when something changed, at most every
TRIALS_EVERY_S seconds and never sooner than TRIALS_SHARE times as long as the last rebuild took
(its cost per trial stays flat however large the study grows), and when the session ends. The
journal, not this table, is the source of truth: a killed session's table may be a few seconds
behind, and the next session rewrites it.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import deque
from pathlib import Path
from typing import Any

import optuna
import pyarrow as pa

from sweeps.results import BATCH_FILE, COLUMNS, DATASETS, PART_FILE, SCHEMAS, trials_frame, write_atomic

FLUSH_EVERY_S = 1.0
MERGE_EVERY = 256
TRIALS_EVERY_S = 1.0
TRIALS_SHARE = 50

Runs = dict[int, dict[str, list[dict[str, Any]]]]  # seed -> {"evals": [...], "episodes": [...]}


class Appender:
    """One dataset folder (`evals/` or `episodes/`): part files of this session, merged into
    batch files."""

    def __init__(self, folder: Path, name: str, session: str):
        self.folder, self.name, self.session = folder, name, session
        self.folder.mkdir(parents=True, exist_ok=True)
        self.unmerged: list[tuple[Path, pa.Table]] = []  # this session's part files
        self.trials = 0  # in the unmerged part files
        self.files = 0

    def write(self, finished: list[tuple[int, Runs]]) -> None:
        """The rows of `finished` trials as one part file."""
        fields = COLUMNS[self.name][2:]
        rows = [{"trial": number, "seed": seed, **{k: row.get(k) for k in fields}}
                for number, runs in finished for seed, run in runs.items() for row in run.get(self.name) or []]
        if not rows:
            return
        table = pa.Table.from_pylist(rows, schema=SCHEMAS[self.name])
        self.unmerged.append((self.write_file(PART_FILE, table), table))
        self.trials += len(finished)

    def merge(self) -> None:
        """This session's part files as one batch file (written first: readers prefer it)."""
        if len(self.unmerged) >= 2:
            self.write_file(BATCH_FILE, pa.concat_tables([table for _, table in self.unmerged]))
            for part, _ in self.unmerged:
                part.unlink(missing_ok=True)
        self.unmerged.clear()
        self.trials = 0

    def write_file(self, prefix: str, table: pa.Table) -> Path:
        path = self.folder / f"{prefix}{self.session}-{self.files:05d}.parquet"
        write_atomic(table, path)
        self.files += 1
        return path


class ResultsWriter:
    """A session's writer of `study`'s results: `add_trial` per finished trial, `changed` when
    the study changed, `check` between events (raises what stopped the writer), `close` at the
    end. `flush` writes what has come in now (the thread's own step)."""

    def __init__(self, run_dir: Path, study: optuna.Study, *, flush_every: float = FLUSH_EVERY_S,
                 merge_every: int = MERGE_EVERY, trials_every: float = TRIALS_EVERY_S):
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.study, self.flush_every, self.merge_every, self.trials_every = study, flush_every, merge_every, trials_every
        session = uuid.uuid4().hex[:8]
        self.datasets = [Appender(self.run_dir / name, name, session) for name in DATASETS]
        self.pending: deque[tuple[int, Runs]] = deque()  # append and popleft are thread-safe
        self.study_changed = True  # a session starts by writing the table as it finds the study
        self.trials_due = 0.0
        self.lock = threading.Lock()  # one flush at a time (the thread's, a test's, `close`'s)
        self.stop = threading.Event()
        self.error: Exception | None = None
        self.thread = threading.Thread(target=self.loop, name="results-writer", daemon=True)
        self.thread.start()

    def add_trial(self, number: int, runs: Runs) -> None:
        """Trial `number`'s rows, written by the next flush."""
        self.pending.append((number, runs))
        self.study_changed = True

    def changed(self) -> None:
        """The study changed (a trial was asked or told): the trials table is due a rebuild."""
        self.study_changed = True

    def loop(self) -> None:
        while not self.stop.wait(self.flush_every):
            try:
                self.flush()
            except Exception as error:  # noqa: BLE001 - raised in the driver's thread (`check`)
                self.error = error
                return

    def flush(self, final: bool = False) -> None:
        """Write the rows that came in, merge when MERGE_EVERY trials are in part files (or at
        the end), and rebuild the trials table when due (or at the end)."""
        with self.lock:
            finished = [self.pending.popleft() for _ in range(len(self.pending))]
            for appender in self.datasets:
                if finished:
                    appender.write(finished)
                if final or appender.trials >= self.merge_every:
                    appender.merge()
            if self.study_changed and (final or time.monotonic() >= self.trials_due):
                self.study_changed = False
                began = time.perf_counter()
                write_atomic(trials_frame(self.study), self.run_dir / "trials.parquet")
                self.trials_due = time.monotonic() + max(self.trials_every, TRIALS_SHARE * (time.perf_counter() - began))

    def check(self) -> None:
        """Raise what made the thread stop writing (a full disk, say), in the caller's thread."""
        if self.error is not None:
            raise self.error

    def close(self) -> None:
        """End of session: stop the thread, write and merge what is left and write the trials
        table as the study has it."""
        self.stop.set()
        self.thread.join()
        self.check()
        self.flush(final=True)
