"""One `dqn-sweep run`: open (or continue) the study, record the run folder, start or reach the
cluster, check its workers, drive the sweep (`sweeps.driver.loop`), then its held-out phase
(`sweeps.driver.heldout`; alone: `dqn-sweep heldout`)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import dask
import optuna
from distributed import Client
from distributed.security import Security

from sweeps.driver import heldout
from sweeps.driver.cluster import connect
from sweeps.driver.env_check import check_env_on_workers, upload
from sweeps.driver.loop import Driver
from sweeps.driver.tally import Monitor, Tally
from sweeps.secrets import mask_url
from sweeps.store.run_folder import RUN_INFO, read_run_info, save_run_info
from sweeps.store.storage import (
    open_storage,
    storage_cli_args,
    storage_for_reading,
    storage_for_run,
)
from sweeps.study.components import make_pruner, make_sampler
from sweeps.study.spec import SpecError, StudySpec
from sweeps.worker.supervise import ENTRY


def open_study(spec: StudySpec, run_dir: Path, storage_url: str | None) -> optuna.Study:
    """Create the study, or load it to continue (same name in the same storage)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(
        study_name=spec.study,
        storage=open_storage(storage_url, run_dir, spec.storage),
        sampler=make_sampler(spec),
        pruner=make_pruner(spec),
        direction="maximize",
        load_if_exists=True,
    )


@contextlib.contextmanager
def cluster(spec: StudySpec, scheduler: str | None, echo: Callable[[str], None], security: Security | None = None,
            allow_version_mismatch: bool = False) -> Iterator[Client]:
    """A client of the embedded cluster or of `scheduler` (its workers' versions checked)."""
    # The embedded scheduler reports a run on a dead worker at once (KilledWorker), so the
    # driver's bounded, counted retries are the only reruns (an external one keeps its setting).
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}), \
            connect(scheduler, spec.parallel, spec.resources.gpus, echo, security=security) as client:
        if scheduler:
            from sweeps.driver.versions import check_worker_versions

            check_worker_versions(client, echo, strict=not allow_version_mismatch)
        yield client


def run_heldout(spec: StudySpec, study: optuna.Study, run_dir: Path, *, scheduler: str | None = None,
                echo: Callable[[str], None] = print, entry: str = ENTRY, security: Security | None = None,
                allow_version_mismatch: bool = False, before: Callable[[], None] = lambda: None) -> heldout.Cost | None:
    """`dqn-sweep heldout`: run, finish or extend the held-out phase of a finished sweep with the
    settings of `spec.heldout` (`sweeps.driver.heldout`). Checks them first (SpecError), then
    calls `before`."""
    try:
        heldout.check(spec, study, spec.heldout)
    except ValueError as error:
        raise SpecError(f"{run_dir}: {error}") from None
    before()
    with cluster(spec, scheduler, echo, security, allow_version_mismatch) as client:
        return heldout.run_heldout(spec, study, client, run_dir, settings=spec.heldout, echo=echo, entry=entry)


def run_sweep(
    spec: StudySpec,
    run_dir: Path,
    *,
    storage_url: str | None = None,
    scheduler: str | None = None,
    monitor: Monitor | None = None,
    echo: Callable[[str], None] = print,
    entry: str = ENTRY,
    security: Security | None = None,
    allow_version_mismatch: bool = False,
    uploads: Sequence[Path] = (),
) -> tuple[optuna.Study, Tally]:
    """Run (or continue) the sweep until its budget is spent, then its held-out phase (unless
    `heldout: false`); returns the study and the tuning's tally.

    `storage_url` None: `$DQN_SWEEP_STORAGE`, else what the run folder recorded, else its journal. `security`: a
    `distributed.security.Security` for a `tls://` scheduler (None: the Dask config's). `uploads`:
    env code sent to every worker (`--upload`, checked by `env_check.prepare_uploads`). On a
    scheduler of its own, or after uploads, every worker first makes the study's env once when
    it needs the user's code (`env_check`).
    """
    storage_url = storage_for_run(storage_url)
    if storage_url is None and (Path(run_dir) / RUN_INFO).exists():  # continue where it was stored
        storage_url = storage_for_reading(None, read_run_info(run_dir)[1])
    if storage_url is not None:
        echo(f"storage: {mask_url(storage_url)}")
    study = open_study(spec, run_dir, storage_url)
    try:
        heldout.check(spec, study, spec.heldout)
    except ValueError as error:
        raise SpecError(f"{run_dir}: {error}") from None
    save_run_info(spec, run_dir, storage_url)
    with cluster(spec, scheduler, echo, security, allow_version_mismatch) as client:
        if uploads:
            upload(client, uploads, echo)
        if scheduler or uploads:
            check_env_on_workers(client, spec, echo)
        driver = Driver(spec, study, client, run_dir, monitor=monitor, entry=entry)
        tally = driver.drive()
        if spec.heldout is not None:
            heldout.run_heldout(spec, study, client, run_dir, settings=spec.heldout, echo=echo, entry=entry)
    echo(f"inspect with: optuna trials {' '.join(storage_cli_args(storage_url, run_dir))} --study-name {spec.study}")
    return study, tally
