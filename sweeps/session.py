"""One `dqn-sweep run`: open (or continue) the study, start the cluster, drive it, save.

The run folder holds `study.yaml` (the study as run, after command-line overrides),
`run.json` (study name and storage, for `status`/`best`/`export`), the Optuna journal (unless
`--storage` points elsewhere) and the Parquet tables.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import dask
import optuna
import yaml

from sweeps import search
from sweeps.cluster import connect
from sweeps.driver import Driver, Monitor, Tally
from sweeps.security import SecurityError, mask_url, storage_for_reading, storage_for_run
from sweeps.spec import StudySpec, parse_spec
from sweeps.storage import StorageError, load_study, open_storage, storage_cli_args
from sweeps.tasks import ENTRY

RUN_INFO = "run.json"
STUDY_COPY = "study.yaml"


def open_study(spec: StudySpec, run_dir: Path, storage_url: str | None) -> optuna.Study:
    """Create the study, or load it to continue (same name in the same storage)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(
        study_name=spec.study,
        storage=open_storage(storage_url, run_dir),
        sampler=search.make_sampler(spec),
        pruner=search.make_pruner(spec),
        direction="maximize",
        load_if_exists=True,
    )


def save_run_info(spec: StudySpec, run_dir: Path, storage_url: str | None) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / STUDY_COPY).write_text(yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False))
    info = {"study_name": spec.study, "storage": mask_url(storage_url)}  # never a password
    (run_dir / RUN_INFO).write_text(json.dumps(info, indent=2) + "\n")


def read_run_info(run_dir: Path) -> tuple[str, str | None]:
    """(study name, storage URL or None for the run folder's journal) of a run folder."""
    path = Path(run_dir) / RUN_INFO
    try:
        info = json.loads(path.read_text())
    except OSError:
        raise StorageError(f"{run_dir}: not a run folder (no {RUN_INFO}); pass --storage and --study") from None
    return info["study_name"], info.get("storage")


def load_run(run_dir: Path, storage_url: str | None = None, study_name: str | None = None):
    """(study, spec) of a run folder; `storage_url`/`study_name` override what it recorded."""
    recorded_name, recorded_url = read_run_info(run_dir)
    try:
        url = storage_for_reading(storage_url, recorded_url)
    except SecurityError as error:
        raise StorageError(str(error)) from None
    study = load_study(url, run_dir, study_name or recorded_name)
    spec = parse_spec(yaml.safe_load((Path(run_dir) / STUDY_COPY).read_text()), source=str(Path(run_dir) / STUDY_COPY))
    return study, spec


def run_sweep(
    spec: StudySpec,
    run_dir: Path,
    *,
    storage_url: str | None = None,
    scheduler: str | None = None,
    monitor: Monitor | None = None,
    echo: Callable[[str], None] = print,
    entry: str = ENTRY,
    security=None,
    allow_version_mismatch: bool = False,
) -> tuple[optuna.Study, Tally]:
    """Run (or continue) the sweep until its budget is spent; returns the study and tally.

    `storage_url` None: `$DQN_SWEEP_STORAGE`, else what the run folder recorded, else its journal. `security`: a
    `distributed.security.Security` for a `tls://` scheduler (None: the Dask config's).
    """
    storage_url = storage_for_run(storage_url)
    if storage_url is None and (Path(run_dir) / RUN_INFO).exists():  # continue where it was stored
        try:
            storage_url = storage_for_reading(None, read_run_info(run_dir)[1])
        except SecurityError as error:
            raise StorageError(str(error)) from None
    if storage_url is not None:
        echo(f"storage: {mask_url(storage_url)}")
    study = open_study(spec, run_dir, storage_url)
    save_run_info(spec, run_dir, storage_url)
    # The embedded scheduler reports a run on a dead worker at once (KilledWorker), so the
    # driver's bounded, counted retries are the only reruns (an external one keeps its setting).
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}), \
            connect(scheduler, spec.parallel, spec.resources.gpus, echo, security=security) as client:
        if scheduler:
            from sweeps.versions import check_worker_versions

            check_worker_versions(client, echo, strict=not allow_version_mismatch)
        driver = Driver(spec, study, client, run_dir, monitor=monitor, entry=entry)
        tally = driver.run()
    echo(f"inspect with: optuna trials {' '.join(storage_cli_args(storage_url, run_dir))} --study-name {spec.study}")
    return study, tally
