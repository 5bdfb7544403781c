"""On a worker, before a sweep's first trial: can this worker's trial processes make the env?

The probe runs where trials run, as they run: a `python -m sweeps.worker.child` process with the
environment a trial's process gets (the allowlist, the study's `resources.env`, the worker's
uploaded code on its PYTHONPATH). The child checks the config before it trains (imports
`env_packages` and the `module:` of `env_id`, makes the env with its kwargs and wrappers, checks
its spaces), then runs `made_when_parsed`, which trains nothing. TensorFlow is not imported.
"""

from __future__ import annotations

from typing import Any

from sweeps.worker.environment import uploaded_paths
from sweeps.worker.supervise import train_in_child

PROBE_ENTRY = "sweeps.worker.env_probe:made_when_parsed"
PROBE_TIME_LIMIT_S = 300.0  # an interpreter start and the env's imports


def made_when_parsed(configs: list[Any], on_event: Any = None, checkpoint_dir: Any = None) -> list[Any]:
    """A trainer that trains nothing: the child made each config's env when it checked it."""
    return []


def probe_env(config: dict[str, Any], env_names: list[str]) -> dict[str, Any]:
    """Dask task: {"worker": address, "error": None, or why a trial process there cannot make the env}."""
    from distributed import get_worker

    worker = get_worker()
    outcome = train_in_child(
        [config], emit=lambda event: None, stopped_members=tuple, entry=PROBE_ENTRY, env=env_names,
        time_limit=PROBE_TIME_LIMIT_S, python_path=uploaded_paths(worker.local_directory),
    )
    return {"worker": worker.address, "error": None if outcome["status"] == "ok" else outcome["reason"]}
