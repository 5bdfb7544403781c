"""Before trials start: do the workers run the driver's dqn-sweep, TensorFlow and gymnasium?

A worker with another TensorFlow or gymnasium trains a different objective (the sweep would
compare trials that are not comparable), and another dqn-sweep may speak another child
protocol or config schema. So a mismatch is an error by default; `--allow-version-mismatch`
turns it into a warning. Versions come from package metadata (`Client.get_versions` reads
`importlib.metadata` on every worker): TensorFlow is never imported on the driver.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from sweeps.driver.cluster import ClusterError

# TensorFlow ships under several distribution names; the first one installed counts.
TENSORFLOW_DISTS = ("tensorflow", "tensorflow-cpu", "tensorflow-macos", "tf-nightly")
CHECKED = ("dqn-sweep", "tensorflow", "gymnasium")


class VersionMismatch(ClusterError):
    """Some workers run other versions of the packages a trial depends on."""


def local_versions() -> dict[str, str | None]:
    return summarize({dist: _installed(dist) for dist in ("dqn-sweep", "gymnasium", *TENSORFLOW_DISTS)})


def _installed(dist: str) -> str | None:
    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def summarize(packages: Mapping[str, str | None]) -> dict[str, str | None]:
    """{dqn-sweep, tensorflow, gymnasium: version or None} from a `get_versions` package map."""
    tensorflow = next((packages.get(d) for d in TENSORFLOW_DISTS if packages.get(d)), None)
    return {"dqn-sweep": packages.get("dqn-sweep"), "tensorflow": tensorflow, "gymnasium": packages.get("gymnasium")}


def mismatches(driver: Mapping[str, str | None], workers: Mapping[str, Mapping[str, Any] | None]) -> list[str]:
    """One line per worker that differs: `tls://10.0.0.5:4321: tensorflow 2.20.0 (driver 2.21.0)`."""
    lines = []
    for address, info in sorted(workers.items()):
        theirs = summarize((info or {}).get("packages") or {})
        diffs = [f"{name} {theirs[name] or 'missing'} (driver {driver[name] or 'missing'})"
                 for name in CHECKED if theirs[name] != driver[name]]
        if diffs:
            lines.append(f"{address}: {', '.join(diffs)}")
    return lines


def check_worker_versions(client, echo: Callable[[str], None], *, strict: bool = True) -> list[str]:
    """Compare every connected worker with the driver; raise `VersionMismatch` (strict) or warn.

    Returns the mismatch lines. Workers that join later are not checked.
    """
    versions = client.get_versions(packages=["dqn-sweep", "gymnasium", *TENSORFLOW_DISTS])
    driver = local_versions()
    workers = versions.get("workers") or {}
    lines = mismatches(driver, workers)
    mine = ", ".join(f"{name} {driver[name] or 'missing'}" for name in CHECKED)
    if not lines:
        if workers:
            echo(f"versions: {len(workers)} worker(s) match the driver ({mine})")
        else:
            echo("versions: no worker connected yet; workers that join later are not checked")
        return lines
    message = (f"{len(lines)} of {len(workers)} worker(s) run other versions than the driver ({mine}):\n  "
               + "\n  ".join(lines))
    if strict:
        raise VersionMismatch(message + "\ninstall the driver's versions on the workers "
                              "(pip install dqn-sweep==... on each), or pass --allow-version-mismatch")
    echo("warning: " + message + "\ncontinuing (--allow-version-mismatch): results may not be comparable")
    return lines
