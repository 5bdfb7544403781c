"""Writes one session's results into the run folder (the layout: `sweeps.store.reader`).

The driver hands over a finished trial's evaluations and episodes (`add_trial`): they are
appended to the session's rows log as one JSON line (`RowsLog`; a killed driver loses none:
the next session writes them) and the driver goes on. A thread of this writer writes whatever
has come in as one part file per dataset at most every FLUSH_EVERY_S seconds, so that a sweep
finishing 16 trials a second writes one Parquet file a second per dataset instead of sixteen,
off the driver's thread. Every MERGE_EVERY trials, and when the session ends, the session's
part files are merged into one batch file (a reader opens a few dozen files at 10,000 trials);
each row is rewritten at most once.

The same thread rebuilds the trials table from the study: when something changed, at most every
TRIALS_EVERY_S seconds and never sooner than TRIALS_SHARE times as long as the last rebuild took
(its cost per trial stays flat however large the study grows), and when the session ends. The
journal, not this table, is the source of truth: a killed session's table may be a few seconds
behind, and the next session rewrites it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from sweeps.store.reader import BATCH_FILE, COLUMNS, DATASETS, PART_FILE, SCHEMAS, trials_frame

FLUSH_EVERY_S = 1.0
MERGE_EVERY = 256
TRIALS_EVERY_S = 1.0
TRIALS_SHARE = 50

Rows = list[dict[str, Any]] | dict[str, list[Any]]  # a list of rows, or {column: values}
SeedRows = dict[int, dict[str, Rows]]  # one trial's rows: seed -> {"evals": rows, "episodes": rows} (or "heldout")


def write_atomic(frame: pd.DataFrame | pa.Table, path: Path) -> None:
    """Write `frame` as Parquet under a temporary name (unique to this writer), then rename it
    into place."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    if isinstance(frame, pa.Table):
        pq.write_table(frame, tmp)
    else:
        frame.to_parquet(tmp, index=False)
    os.replace(tmp, path)


class Appender:
    """One dataset folder (`evals/`, `episodes/` or `heldout/`): part files of this session,
    merged into batch files."""

    def __init__(self, folder: Path, name: str, session: str):
        self.folder, self.name, self.session = folder, name, session
        self.folder.mkdir(parents=True, exist_ok=True)
        self.own = [key for key in COLUMNS[name] if key not in ("trial", "seed")]  # given by the rows
        self.unmerged: list[tuple[Path, pa.Table]] = []  # this session's part files
        self.trials = 0  # in the unmerged part files
        self.files = 0

    def write(self, finished: list[tuple[int | None, SeedRows]]) -> None:
        """The rows of `finished` trials as one part file."""
        columns: dict[str, list[Any]] = {key: [] for key in COLUMNS[self.name]}  # built by column: faster than by row
        for number, seed_rows in finished:
            for seed, tables in seed_rows.items():
                rows = tables.get(self.name) or []
                given = rows if isinstance(rows, dict) else {key: [row.get(key) for row in rows] for key in self.own}
                count = len(next(iter(given.values()), ()))
                columns["trial"] += [number] * count
                columns["seed"] += [seed] * count
                for key in self.own:
                    columns[key] += given.get(key) or [None] * count
        if not columns["trial"]:
            return
        table = pa.table(columns, schema=SCHEMAS[self.name])
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


class RowsLog:
    """The finished trials of this session not yet in part files, a JSON line each, appended when
    the driver hands them over (no fsync: the operating system has them, as with the journal).
    A session killed outright leaves its log; the next session writes it as part files.

    `.rows-<session>.lock` is held (flock) while the session lives, so that a session started
    beside a live one takes only logs whose session is dead, and so that a driver sharing the
    run folder knows at once that a session died (`session_ended`, `sweeps.store.leases`)."""

    def __init__(self, run_dir: Path, session: str):
        self.path = run_dir / f".rows-{session}.jsonl"
        self.lock_path = self.path.with_suffix(".lock")
        self.held = self.lock_path.open("w")
        with contextlib.suppress(OSError):  # no locks on this file system: nobody takes logs
            fcntl.flock(self.held, fcntl.LOCK_EX)
        self.file = self.path.open("a", encoding="utf-8")
        self.lock = threading.Lock()  # the driver's appends against the writer's `drop`
        self.entries: list[tuple[int | None, SeedRows, str]] = []

    def add(self, number: int | None, rows: SeedRows) -> None:
        line = json.dumps([number, rows], separators=(",", ":")) + "\n"
        with self.lock:
            self.file.write(line)
            self.file.flush()
            self.entries.append((number, rows, line))

    def taken(self) -> list[tuple[int | None, SeedRows]]:
        """The trials to write now (the first ones of the log)."""
        with self.lock:
            return [(number, rows) for number, rows, _ in self.entries]

    def drop(self, count: int) -> None:
        """The first `count` trials are in part files now: the log keeps the rest (replaced
        whole, so a kill leaves the old log or the new one)."""
        with self.lock:
            self.entries = self.entries[count:]
            tmp = self.path.with_name(f"{self.path.name}.tmp")
            tmp.write_text("".join(line for _, _, line in self.entries), encoding="utf-8")
            os.replace(tmp, self.path)
            self.file.close()
            self.file = self.path.open("a", encoding="utf-8")

    def release(self) -> None:
        """This session ends without writing its rows: the log stays for the next session."""
        self.file.close()
        self.held.close()

    def close(self) -> None:
        """All written: remove the log, then release the session's lock."""
        self.file.close()
        self.path.unlink(missing_ok=True)
        self.lock_path.unlink(missing_ok=True)
        self.held.close()


def session_ended(run_dir: Path, session: str) -> bool:
    """Whether `session` held a rows log in `run_dir` and is dead now (its lock is free). False
    when it is alive, or when nothing here tells (its lock file is gone: it ended well, another
    session took its log, or it ran in another run folder)."""
    try:
        held = os.open(Path(run_dir) / f".rows-{session}.lock", os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:  # alive, or no locks on this file system
        return False
    finally:
        os.close(held)
    return True


def dead_sessions_rows(run_dir: Path) -> Iterator[tuple[str, list[tuple[int | None, SeedRows]]]]:
    """(session, its trials) of the rows logs that killed sessions left (their lock is free),
    each removed once the caller has taken its trials (`RowsLog`). A torn last line is skipped."""
    for path in sorted(run_dir.glob(".rows-*.jsonl")):
        try:
            held = os.open(path.with_suffix(".lock"), os.O_RDONLY)
        except FileNotFoundError:
            continue  # its session is ending, or another took the log
        try:
            try:
                fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # its session is alive
            except OSError:
                return  # no locks on this file system: a live session's log cannot be told apart
            if not path.exists():
                continue  # another session took it meanwhile
            trials = []
            for line in path.read_text(encoding="utf-8").splitlines():
                with contextlib.suppress(json.JSONDecodeError, ValueError, TypeError):
                    number, rows = json.loads(line)
                    number = None if number is None else int(number)  # None: the held-out baseline
                    trials.append((number, {int(seed): tables for seed, tables in rows.items()}))
            yield path.stem.removeprefix(".rows-"), trials
            for leftover in (path, path.with_name(f"{path.name}.tmp"), path.with_suffix(".lock")):
                leftover.unlink(missing_ok=True)
        finally:
            os.close(held)


def heldout_rows(config: str, rows: dict[int, list[dict[str, Any]]]) -> SeedRows:
    """A held-out config's evaluations ({seed: eval rows}) as the rows log takes them."""
    return {seed: {"heldout": [{**row, "config": config} for row in evals]} for seed, evals in rows.items()}


class ResultsWriter:
    """A session's writer of `study`'s results: `add_trial` per finished trial, `changed` when
    the study changed, `check` between events (raises what stopped the writer), `close` at the
    end. `flush` writes what has come in now (the thread's own step). `session`: the driver
    session's id (default: a new one); `ended_sessions`: the dead sessions whose logs it took."""

    def __init__(self, run_dir: Path, study: optuna.Study, *, session: str | None = None,
                 flush_every: float = FLUSH_EVERY_S, merge_every: int = MERGE_EVERY,
                 trials_every: float = TRIALS_EVERY_S):
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.study, self.flush_every, self.merge_every, self.trials_every = study, flush_every, merge_every, trials_every
        session = session or uuid.uuid4().hex[:8]
        self.datasets = [Appender(self.run_dir / name, name, session) for name in DATASETS]
        self.rows = RowsLog(self.run_dir, session)
        self.ended_sessions: set[str] = set()
        for ended, trials in dead_sessions_rows(self.run_dir):
            self.ended_sessions.add(ended)
            for number, rows in trials:
                self.rows.add(number, rows)
        self.study_changed = True  # a session starts by writing the table as it finds the study
        self.trials_due = 0.0
        self.lock = threading.Lock()  # one flush at a time (the thread's, a test's, `close`'s)
        self.stop, self.wake = threading.Event(), threading.Event()
        self.error: Exception | None = None
        self.thread = threading.Thread(target=self.loop, name="results-writer", daemon=True)
        self.thread.start()

    def add_trial(self, number: int, rows: SeedRows) -> None:
        """Trial `number`'s rows, written by the next flush."""
        self.rows.add(number, rows)
        self.changed()

    def add_heldout(self, config: str, trial: int | None, rows: dict[int, list[dict[str, Any]]]) -> None:
        """A held-out config's evaluations on some seeds ({seed: eval rows}; `trial` None for the
        baseline), written by the next flush."""
        self.rows.add(trial, heldout_rows(config, rows))
        self.changed()

    def changed(self) -> None:
        """The study changed (a trial was asked or told): the trials table is due a rebuild."""
        self.study_changed = True
        self.wake.set()

    def loop(self) -> None:
        """Flush now (a session starts by writing the trials table as it finds the study), then
        whenever something came in, at most every `flush_every` seconds, until `close`."""
        while True:
            self.wake.clear()
            try:
                self.flush()
            except Exception as error:  # noqa: BLE001 - raised in the driver's thread (`check`)
                self.error = error
                return
            if self.stop.wait(self.flush_every):
                return
            if not self.study_changed:  # all written: sleep until something comes in
                self.wake.wait()

    def flush(self, final: bool = False) -> None:
        """Write the rows that came in, merge when MERGE_EVERY trials are in part files (or at
        the end), and rebuild the trials table when due (or at the end)."""
        with self.lock:
            finished = self.rows.taken()
            if finished:
                for appender in self.datasets:
                    appender.write(finished)
                self.rows.drop(len(finished))
            for appender in self.datasets:
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
        self.wake.set()
        self.thread.join()
        try:
            self.check()
            self.flush(final=True)
        except BaseException:
            self.rows.release()  # its log stays for the next session, which sees this one ended
            raise
        self.rows.close()
