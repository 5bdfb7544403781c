"""Where a study lives: an Optuna journal file in the run folder, or a URL the user gives.

The journal file is the default because the driver is its only writer (SQLite locks under
concurrency, optuna#820); it is synced to disk on a debounce (`sweeps.journal`). Cluster users
pass an RDB URL (sqlite/postgresql/mysql) or a `redis://` journal. `storage_cli_args` says how the `optuna` CLI opens the same storage.
"""

from __future__ import annotations

from pathlib import Path

import optuna
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalRedisBackend

from sweeps.journal import RunStorage
from sweeps.security import SecurityError, expand_url, mask_url, scrub

JOURNAL_NAME = "journal.log"
RDB_SCHEMES = ("sqlite", "postgresql", "mysql")


class StorageError(ValueError):
    """The storage URL is malformed or its backend cannot be opened."""


def journal_path(run_dir: Path) -> Path:
    return Path(run_dir) / JOURNAL_NAME


def open_storage(url: str | None, run_dir: Path) -> BaseStorage:
    """`url` None: the journal file in `run_dir`; else an RDB URL, `redis://...`, or a file path.

    `${VAR}` references in `url` are expanded here; errors show the URL with its password masked.
    """
    if url is None:
        Path(run_dir).mkdir(parents=True, exist_ok=True)
        return RunStorage(str(journal_path(run_dir)))
    shown = mask_url(url)
    try:
        real = expand_url(url)
    except SecurityError as error:
        raise StorageError(str(error)) from None
    scheme = real.split("://", 1)[0].split("+", 1)[0] if "://" in real else ""
    try:
        if scheme in RDB_SCHEMES:
            return RDBStorage(real)
        if scheme in ("redis", "rediss"):
            return JournalStorage(JournalRedisBackend(real))
        if scheme == "":
            return RunStorage(real)
    except ImportError as error:
        raise StorageError(scrub(f"--storage {shown}: backend needs a package that is missing ({error})", real, url)) from None
    except Exception as error:  # noqa: BLE001 - connection refused, bad credentials, bad path
        raise StorageError(scrub(f"--storage {shown}: cannot open ({type(error).__name__}: {error})", real, url)) from None
    raise StorageError(
        f"--storage {shown}: unknown scheme {scheme!r}; allowed: sqlite:///FILE, postgresql://..., "
        "mysql://..., redis://HOST:PORT, or a journal file path"
    )


def storage_cli_args(url: str | None, run_dir: Path) -> list[str]:
    """Arguments that make `optuna trials|best-trial|studies` read this storage (password masked)."""
    url = mask_url(url)
    if url is None or "://" not in url:
        return ["--storage", str(url or journal_path(run_dir)), "--storage-class", "JournalFileBackend"]
    if url.startswith(("redis://", "rediss://")):
        return ["--storage", url, "--storage-class", "JournalRedisBackend"]
    return ["--storage", url]


def load_study(url: str | None, run_dir: Path, study_name: str) -> optuna.Study:
    storage = open_storage(url, run_dir)
    try:
        return optuna.load_study(study_name=study_name, storage=storage)
    except KeyError:
        names = [s.study_name for s in optuna.get_all_study_summaries(storage)]
        raise StorageError(
            f"no study named {study_name!r} in {mask_url(url) or journal_path(run_dir)}; found: {', '.join(names) or 'none'}"
        ) from None
