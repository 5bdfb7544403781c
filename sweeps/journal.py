"""The run folder's Optuna journal file, synced to disk on a debounce instead of at every write.

Optuna's `JournalFileBackend` fsyncs each write, and a trial costs the driver about 30 writes
(the ask, each param, each attribute, each reported evaluation, the tell). At 1-3 ms an fsync on
a cloud or shared disk, that is 30-90 ms per trial on the thread that refills the workers: the
largest cost of a 10,000-trial sweep (`benchmarks/scale.py` prints it). Here a write still goes
to the file at once, under Optuna's lock, in Optuna's format: readers (`optuna trials`,
optuna-dashboard, another session) see it at once and a killed driver loses nothing (the
operating system has it). Only a crash of the machine itself can lose the writes of the last
SYNC_EVERY_S seconds; a torn last line is skipped by Optuna's reader.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from optuna.storages.journal import JournalFileBackend

SYNC_EVERY_S = 1.0


class RunJournal(JournalFileBackend):
    """`JournalFileBackend` whose writes are fsynced at most every SYNC_EVERY_S seconds."""

    def __init__(self, file_path: str):
        super().__init__(file_path)
        self.next_sync = 0.0

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        text = "\n".join(json.dumps(log, separators=(",", ":")) for log in logs) + "\n"
        self._lock.acquire()
        try:
            with open(self._file_path, "ab") as file:
                file.write(text.encode("utf-8"))
                file.flush()
                if time.monotonic() >= self.next_sync:
                    os.fsync(file.fileno())
                    self.next_sync = time.monotonic() + SYNC_EVERY_S
        finally:
            self._lock.release()
