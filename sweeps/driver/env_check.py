"""The user's env code on a cluster: sent with `--upload`, and checked on every worker before
the first trial, so that a worker without it stops the sweep with that worker's error instead
of failing trial after trial.

Two ways reach workers that did not install the code: their image has it (a package installed
on every worker), or `--upload PATH` sends a module file (`.py`), a package folder (zipped) or a
`.zip`/`.egg` with Dask's `UploadFile` worker plugin. The scheduler keeps the plugin, so every
current worker and every worker that joins later gets the file in its local directory; trial
processes find it on their PYTHONPATH (`sweeps.worker.environment.uploaded_paths`). The driver
imports the same code from PATH to check the study.
"""

from __future__ import annotations

import sys
import tempfile
import uuid
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from distributed.diagnostics.plugin import UploadFile

from sweeps.driver.cluster import ClusterError
from sweeps.study.space import seed_configs
from sweeps.study.spec import StudySpec
from sweeps.worker.cores import scheduler_records
from sweeps.worker.env_probe import PROBE_TIME_LIMIT_S, probe_env

ARCHIVES = (".zip", ".egg")


class UploadError(ValueError):
    """An `--upload` path that is not a module, a package folder or an archive."""


class EnvCheckError(ClusterError):
    """A worker's trial process cannot make the study's env."""


def prepare_uploads(paths: Sequence[Path]) -> list[Path]:
    """Check each `--upload` path and make it importable here, as it will be on the workers."""
    out = []
    for path in paths:
        path = Path(path).resolve()
        if path.is_dir():
            if not path.name.isidentifier():
                raise UploadError(f"--upload {path}: a package folder's name must be an importable name")
            where = path.parent
        elif path.is_file() and (path.suffix == ".py" or path.suffix in ARCHIVES):
            where = path.parent if path.suffix == ".py" else path
        else:
            raise UploadError(f"--upload {path}: expected a module file (.py), a package folder, or a "
                              ".zip/.egg archive" + ("" if path.exists() else " (no such file or folder)"))
        if str(where) not in sys.path:
            sys.path.insert(0, str(where))
        out.append(path)
    return out


def upload(client, paths: Sequence[Path], echo: Callable[[str], None]) -> None:
    """Send each path to every worker, present and future (a folder as `<name>.zip`)."""
    for path in paths:
        with tempfile.TemporaryDirectory() as folder:
            sent = zip_package(path, Path(folder)) if path.is_dir() else path
            plugin = UploadFile(str(sent), load=False)  # UploadFile reads the file now
        try:
            client.register_plugin(plugin, name=f"dqn-sweep-upload-{sent.name}")
        except Exception as error:  # noqa: BLE001 - a worker's failure comes back as any exception
            raise ClusterError(f"--upload {path}: a worker could not store it ({type(error).__name__}: {error})") from None
        echo(f"uploaded {path} to the workers (and to workers that join later)")


def zip_package(folder: Path, into: Path) -> Path:
    """`folder` as `<into>/<name>.zip` holding `<name>/...`, importable from the archive."""
    archive = into / f"{folder.name}.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
        for file in sorted(folder.rglob("*")):
            if file.is_file() and "__pycache__" not in file.parts and file.suffix != ".pyc":
                zipped.write(file, file.relative_to(folder.parent))
    return archive


def needs_user_code(config: dict[str, Any]) -> bool:
    """Whether making the env imports code that a worker may lack (its image has gymnasium)."""
    return bool(config.get("env_packages") or config.get("env_wrappers") or ":" in str(config.get("env_id", "")))


def check_env_on_workers(client, spec: StudySpec, echo: Callable[[str], None]) -> None:
    """Have a trial process on every connected worker make the study's env; raise
    `EnvCheckError` naming each worker that cannot, with its error."""
    config = seed_configs(spec, {})[0]
    if not needs_user_code(config):
        return
    workers = sorted(scheduler_records(client))
    if not workers:
        echo("env: no worker connected yet; each trial makes its env when it starts")
        return
    key = f"dqn-sweep-env-probe-{uuid.uuid4().hex}"
    futures = [client.submit(probe_env, config, list(spec.resources.env), workers=[address],
                             allow_other_workers=False, pure=False, key=f"{key}-{k}")
               for k, address in enumerate(workers)]
    results = [probe_result(future, address) for future, address in zip(futures, workers)]
    failed = [r for r in results if r["error"]]
    if failed:
        lines = "\n  ".join(f"{r['worker']}: {r['error']}" for r in failed)
        raise EnvCheckError(
            f"{len(failed)} of {len(results)} worker(s) cannot make env_id = {config['env_id']!r} in a trial "
            f"process, so no trial was started:\n  {lines}\ninstall the env's code on the workers' image, "
            "or send it with --upload PATH (a module file or a package folder)"
        )
    echo(f"env: {len(results)} worker(s) made {config['env_id']}")


def probe_result(future, address: str) -> dict[str, Any]:
    try:
        return future.result(timeout=2 * PROBE_TIME_LIMIT_S)
    except Exception as error:  # noqa: BLE001 - the probe task itself failed (a lost worker, a time-out)
        return {"worker": address, "error": f"the check did not run ({type(error).__name__}: {error})"}
