"""The run folder's Optuna journal file: synced to disk on a debounce, and able to take a group of
writes as one append. What it needs of Optuna's journal internals is `sweeps.store.optuna_private`'s.

Optuna's `JournalFileBackend` fsyncs each write, and a trial costs the driver about 30 writes
(the ask, each param, each attribute, each reported evaluation, the tell): on a cloud or shared
disk, fsyncs were the largest cost of a 10,000-trial sweep on the thread that refills the
workers (`benchmarks/scale.py` prints it; docs/performance.md). Here a write still goes
to the file at once, under Optuna's lock, in Optuna's format: readers (`optuna trials`,
optuna-dashboard, another session) see it at once and a killed driver loses nothing (the
operating system has it). Only a crash of the machine itself can lose the writes of the last
SYNC_EVERY_S seconds; a torn last line is skipped by Optuna's reader.

Each write also takes Optuna's file lock (a symlink made and removed) and reads
back what was appended since the last read, so the attributes the driver records when it asks
and ends a trial (a dozen), a blind sampler's params (`sweeps.driver.asking`) and, when no pruner judges
them, the evaluations it reports in one pass over its inbox go in as one append
(`writes_together`): one lock, one write, the same lines in the same order.

Optuna's `ask` looks for WAITING (enqueued) trials every call, and its journal storage finds
them by scanning every trial of the study, which grows with the sweep. `RunStorage` starts that
scan at the first trial that is not finished.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import threading
import time
from collections import Counter
from collections.abc import Container, Iterator
from typing import Any

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import BaseStorage, JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial, TrialState

from sweeps.store.optuna_private import (
    journal_file,
    journal_file_lock,
    journal_offset,
    replayed_trials,
    storage_lock,
    storage_of,
    study_id,
    sync_journal,
)

SYNC_EVERY_S = 1.0


class RunJournal(JournalFileBackend):
    """`JournalFileBackend` whose writes are fsynced at most every SYNC_EVERY_S seconds, and held
    for one append while `holder` is the writing thread (`RunStorage.together`)."""

    def __init__(self, file_path: str):
        super().__init__(file_path)
        self.next_sync = 0.0
        self.held: list[dict[str, Any]] = []
        self.holder: int | None = None  # the thread whose writes are held

    def read_logs(self, log_number_from: int) -> Iterator[dict[str, Any]]:
        """As Optuna's, without opening the file when nothing was appended since `log_number_from`:
        Optuna reads back after every write and before every read, and a read between writes
        mostly finds nothing new. Inside `RunStorage.together` the holder reads nothing (its writes are not
        in the file yet; the block's end reads them back with what others appended)."""
        if self.holder == threading.get_ident():
            return iter(())
        offset = journal_offset(self, log_number_from)
        if offset is not None and os.stat(journal_file(self)).st_size == offset:
            return iter(())
        return super().read_logs(log_number_from)

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        if self.holder == threading.get_ident():
            self.held.extend(logs)
            return
        text = "\n".join(json.dumps(log, separators=(",", ":")) for log in logs) + "\n"
        with journal_file_lock(self), open(journal_file(self), "ab") as file:
            file.write(text.encode("utf-8"))
            file.flush()
            if time.monotonic() >= self.next_sync:
                os.fsync(file.fileno())
                self.next_sync = time.monotonic() + SYNC_EVERY_S


class RunStorage(JournalStorage):
    """A `JournalStorage` on a `RunJournal` file, whose search for WAITING trials (Optuna's
    `ask` makes one every call) does not scan the whole study."""

    def __init__(self, file_path: str):
        self.journal = RunJournal(file_path)
        super().__init__(self.journal)
        self.settled: dict[int, int] = {}  # study id -> how many of its first trials are finished
        self.settled_states: dict[int, Counter[TrialState]] = {}  # study id -> the states of those

    def get_all_trials(self, study_id: int, deepcopy: bool = True,
                       states: Container[TrialState] | None = None) -> list[FrozenTrial]:
        """As Optuna's, but the WAITING trials are looked for from the study's first trial that
        is not finished (a finished trial never changes again), so that an ask at 10,000 trials
        costs what it costs at 100 (Optuna's replay keeps the trials in creation order)."""
        if states is None or set(states) != {TrialState.WAITING}:
            return super().get_all_trials(study_id, deepcopy, states)
        with storage_lock(self):
            waiting = [t for t in self.unsettled(study_id) if t.state == TrialState.WAITING]
            return copy.deepcopy(waiting) if deepcopy else waiting

    def count_states(self, study_id: int) -> Counter[TrialState]:
        """How many of the study's trials are in each state, counting only the trials after its
        first unfinished one (the finished ones before it were counted as they settled)."""
        with storage_lock(self):
            unsettled = self.unsettled(study_id)
            return self.settled_states[study_id] + Counter(t.state for t in unsettled)

    def unsettled(self, study_id: int) -> list[FrozenTrial]:
        """The study's trials from its first one that is not finished (a finished trial never
        changes again; Optuna's replay keeps the trials in creation order). Call with the lock."""
        ids, trials = replayed_trials(self, study_id)
        start = self.settled.get(study_id, 0)
        counts = self.settled_states.setdefault(study_id, Counter())
        while start < len(ids) and trials[ids[start]].state.is_finished():
            counts[trials[ids[start]].state] += 1
            start += 1
        self.settled[study_id] = start
        return [trials[i] for i in ids[start:]]

    @contextlib.contextmanager
    def together(self) -> Iterator[None]:
        """This thread's writes inside the block go to the file as one append at its end (other
        threads' go at once; a block inside another joins it), and are read back there, in this
        thread, before any other thread reads: what the storage refuses of them (a param outside
        the study's space) is raised at the block's end, here. Until then the storage does not
        show them, even to this thread. One thread at a time: the driver's."""
        journal = self.journal
        if journal.holder == threading.get_ident():
            yield
            return
        try:
            journal.holder = threading.get_ident()
            yield
        finally:
            journal.holder = None
            held, journal.held = journal.held, []
            if held:
                with storage_lock(self):
                    journal.append_logs(held)
                    self.read_back(len(held))

    def read_back(self, writes: int) -> None:
        """Replay what the journal has that this storage has not read, all of it, after this
        thread appended `writes` logs: the first of them the storage refuses (a trial another
        driver finished, a param outside the space) is raised once the rest is read (Optuna's
        replay stops at a refused write; only this thread's writes are refused here). Call with
        the lock."""
        refused = None
        for _ in range(writes + 1):
            try:
                sync_journal(self)
                break
            except (UpdateFinishedTrialError, ValueError, KeyError) as error:
                refused = refused or error
        if refused is not None:
            raise refused


def state_counts(study: optuna.Study) -> Counter[TrialState]:
    """How many of `study`'s trials are in each state (whichever driver ran them); on the run
    folder's journal without a pass over the finished trials (`RunStorage.count_states`)."""
    storage = storage_of(study)
    if isinstance(storage, RunStorage):
        return storage.count_states(study_id(study))
    return Counter(trial.state for trial in study.get_trials(deepcopy=False))


def writes_together(storage: BaseStorage) -> contextlib.AbstractContextManager[None]:
    """This thread's writes to `storage` inside the block as one append when it is a
    `RunStorage` (other storages write one by one, as always). Only for writes nothing reads
    back from the storage inside the block: attributes, and reports no pruner judges. Params
    only once the space is known to pass the check the storage makes when it reads a param back
    (`sweeps.driver.asking`)."""
    return storage.together() if isinstance(storage, RunStorage) else contextlib.nullcontext()
