"""A run folder's own records: `study.yaml` (the study as run, after command-line overrides) and
`run.json` (study name and storage, password masked), and opening a run folder's study from them
(`status`, `best`, `export`, `report`)."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import yaml

from sweeps.secrets import mask_url
from sweeps.store.storage import StorageError, load_study, storage_for_reading
from sweeps.study.loading import parse_spec
from sweeps.study.spec import StudySpec

RUN_INFO = "run.json"
STUDY_COPY = "study.yaml"


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


def storage_of_run(run_dir: Path, given: str | None = None) -> str | None:
    """The storage URL a run folder's commands use: `given`, else what `run` recorded."""
    return storage_for_reading(given, read_run_info(run_dir)[1])


def load_spec_copy(run_dir: Path) -> StudySpec:
    """The study as it was run (`RUN_DIR/study.yaml`)."""
    path = Path(run_dir) / STUDY_COPY
    return parse_spec(yaml.safe_load(path.read_text()), source=str(path))


def load_run(run_dir: Path, storage_url: str | None = None,
             study_name: str | None = None) -> tuple[optuna.Study, StudySpec]:
    """(study, spec) of a run folder; `storage_url`/`study_name` override what it recorded."""
    recorded_name, recorded_url = read_run_info(run_dir)
    url = storage_for_reading(storage_url, recorded_url)
    return load_study(url, run_dir, study_name or recorded_name), load_spec_copy(run_dir)
