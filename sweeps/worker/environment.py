"""The environment a trial's child process gets: an allowlist of the worker's variables, never
all of them, plus what the study names (`resources.env`) and what the task sets itself.

A child's stderr tail becomes the trial's `fail_reason` (Optuna storage, Parquet tables, HTML
report), so what it can see is kept small; `sweeps.secrets.scrub` masks, as a second line of
defence, the worker's secret-looking values that still show up in a reason.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from sweeps.secrets import SECRET_NAME, STORAGE_ENV

CHILD_NAMES = frozenset({
    "PATH", "HOME", "USER", "LOGNAME", "LANG", "TZ", "TMPDIR", "LD_LIBRARY_PATH",
    "PYTHONPATH", "PYTHONHASHSEED", "VIRTUAL_ENV",
})
# Families that tune TensorFlow, CUDA, the BLAS/OpenMP runtimes, and dqn-sweep itself.
CHILD_PREFIXES = ("LC_", "TF_", "XLA_", "CUDA_", "CUDNN_", "NVIDIA_", "NCCL_", "OMP_", "MKL_", "KMP_",
                  "OPENBLAS_", "KERAS_", "DQN_SWEEP_")
TERRAFORM_PREFIXES = ("TF_VAR_", "TF_TOKEN_", "TF_CLI_")  # Terraform's TF_ variables, not TensorFlow's


def child_environment(environ: Mapping[str, str], extra: Iterable[str] = ()) -> dict[str, str]:
    """The allowlisted part of `environ`, plus the variables named in `extra` (`resources.env`);
    never `DQN_SWEEP_STORAGE` (the storage URL and its password: trials never need it)."""
    extra = set(extra) - {STORAGE_ENV}
    return {name: value for name, value in environ.items() if name in extra or _allowlisted(name)}


def _allowlisted(name: str) -> bool:
    """A family prefix admits no secret-looking name (TF_HTTP_PASSWORD is Terraform's, not ours);
    a study passes one on purpose by naming it in `resources.env`."""
    return ((name in CHILD_NAMES or name.startswith(CHILD_PREFIXES))
            and not name.startswith(TERRAFORM_PREFIXES) and name != STORAGE_ENV
            and not SECRET_NAME.search(name))


def uploaded_paths(local_directory: str | None) -> list[str]:
    """Where code sent with Dask's upload plugins (`dqn-sweep run --upload`, `Client.upload_file`)
    lands on a worker: `.py` modules in its local directory, `.zip`/`.egg` archives as files there.
    The worker imports from these; a trial's child process gets them on its PYTHONPATH."""
    if not local_directory or not Path(local_directory).is_dir():
        return []
    files = sorted(Path(local_directory).iterdir())
    modules = [local_directory] if any(p.suffix == ".py" for p in files) else []
    return modules + [str(p) for p in files if p.suffix in (".zip", ".egg")]


def child_env(threads: int, gpu_ids: list[str], names: Iterable[str] = (),
              environ: Mapping[str, str] | None = None, python_path: Sequence[str] = ()) -> dict[str, str]:
    """Environment of the child: the worker's allowlisted variables and those the study names
    (`names`), TF pools sized to our cores, only our GPUs visible (the variables of
    `sweeps.study.resources.SET_BY_TASK`), `python_path` ahead of the worker's PYTHONPATH."""
    env = child_environment(os.environ if environ is None else environ, names)
    if python_path:
        env["PYTHONPATH"] = os.pathsep.join([*python_path, *filter(None, [env.get("PYTHONPATH")])])
    env.update(
        TF_NUM_INTRAOP_THREADS=str(threads),
        TF_NUM_INTEROP_THREADS=str(threads),
        OMP_NUM_THREADS=str(threads),
        CUDA_VISIBLE_DEVICES=",".join(gpu_ids),
        PYTHONUNBUFFERED="1",
    )
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env
