"""Where a study lives: an Optuna journal file in the run folder, or a URL the user gives.

The journal file is the default because the driver is its only writer (SQLite locks under
concurrency, optuna#820); it is synced to disk on a debounce (`sweeps.store.journal`). Cluster
users pass an RDB URL (sqlite/postgresql/mysql) or a `redis://` journal. `${VAR}` references in a
URL are expanded only when the storage is opened; what is recorded and shown has its password
masked (`sweeps.secrets`). `storage_cli_args` says how the `optuna` CLI opens the same storage.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

import optuna
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalRedisBackend

from sweeps.secrets import ENV_REFERENCE, MASK, STORAGE_ENV, mask_url, scrub, secrets_of
from sweeps.store.journal import RunStorage
from sweeps.store.optuna_private import cached_rdb
from sweeps.store.outages import Outage, PatientJournalStorage, PatientStorage
from sweeps.study.spec import Storage as StorageTerms

JOURNAL_NAME = "journal.log"
RDB_SCHEMES = ("sqlite", "postgresql", "mysql")


class StorageError(ValueError):
    """The storage URL is malformed, its secret cannot be resolved, or its backend cannot be opened."""


def journal_path(run_dir: Path) -> Path:
    return Path(run_dir) / JOURNAL_NAME


def expand_url(url: str) -> str:
    """Replace `${VAR}` references in a storage URL by the environment's values."""
    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in os.environ:
            raise StorageError(f"storage URL {mask_url(url)} refers to ${{{name}}}, which is not set")
        return os.environ[name]

    return ENV_REFERENCE.sub(value, url)


def storage_for_run(given: str | None) -> str | None:
    """The storage of `dqn-sweep run`: `--storage`, else `$DQN_SWEEP_STORAGE`, else None (journal)."""
    return given or os.environ.get(STORAGE_ENV) or None


def storage_for_reading(given: str | None, recorded: str | None) -> str | None:
    """The storage of a run folder: `--storage`, else what `run.json` recorded (None: the
    folder's journal). A recorded URL whose password was masked needs the secret again: from
    `$DQN_SWEEP_STORAGE`, whose masked form must equal the record."""
    if given or recorded is None or MASK not in recorded:
        return given or recorded
    env = os.environ.get(STORAGE_ENV) or None
    if env and mask_url(env) == recorded:
        return env
    hint = f" ({STORAGE_ENV} holds another URL: {mask_url(env)})" if env else ""
    raise StorageError(
        f"the run folder records storage {recorded} without its password{hint}; set {STORAGE_ENV} to the "
        "full URL or pass --storage (or give the password through the database's own config, e.g. PGPASSWORD)"
    )


def open_storage(url: str | None, run_dir: Path, terms: StorageTerms | None = None) -> BaseStorage:
    """`url` None: the journal file in `run_dir`; else an RDB URL, `redis://...`, or a file path.

    A driver passes its study's `storage` `terms`: an RDB then records Optuna's heartbeats
    (`sweeps.store.leases`), and a server's storage (RDB, Redis) waits out outages of up to
    `terms.outage` seconds (`sweeps.store.outages`). Readers pass none: they fail at once.
    `${VAR}` references in `url` are expanded here; errors show the URL with its password masked.
    """
    if url is None:
        Path(run_dir).mkdir(parents=True, exist_ok=True)
        return RunStorage(str(journal_path(run_dir)))
    shown = mask_url(url)
    real = expand_url(url)
    hidden = secrets_of(real) + secrets_of(url)
    scheme = real.split("://", 1)[0].split("+", 1)[0] if "://" in real else ""
    try:
        if scheme in RDB_SCHEMES and terms is None:
            return RDBStorage(real)
        if scheme in RDB_SCHEMES:
            with warnings.catch_warnings():  # Optuna marks heartbeat_interval experimental
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                rdb = RDBStorage(real, heartbeat_interval=terms.heartbeat, grace_period=terms.grace)
            return PatientStorage(cached_rdb(rdb), Outage(shown, terms.outage))
        if scheme in ("redis", "rediss") and terms is None:
            return JournalStorage(JournalRedisBackend(real))
        if scheme in ("redis", "rediss"):
            return PatientJournalStorage(JournalRedisBackend(real), Outage(shown, terms.outage))
        if scheme == "":
            return RunStorage(real)
    except ImportError as error:
        raise StorageError(scrub(f"--storage {shown}: backend needs a package that is missing ({error})", hidden)) from None
    except Exception as error:  # noqa: BLE001 - connection refused, bad credentials, bad path
        raise StorageError(scrub(f"--storage {shown}: cannot open ({type(error).__name__}: {error})", hidden)) from None
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
