"""How many cores a worker may use, and how many task slots share its host, so that a trial's
TensorFlow thread pools fit them.

`os.cpu_count()` sees the whole node: a 4-CPU pod on a 64-core node would oversubscribe
16-fold. The worker's CPU affinity and its cgroup CPU quota say what it really has.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

CGROUP_ROOT = Path("/sys/fs/cgroup")


def auto_threads(cores: int, slots: int) -> int:
    """A host's cores shared evenly among its task slots, at least 1 each."""
    return max(1, cores // max(1, slots))


def available_cores(cgroup_root: Path = CGROUP_ROOT, cgroup: str | None = None) -> int:
    """Cores this process may use: its CPU affinity, capped by the cgroup CPU quota (rounded
    up), at least 1. `cgroup`: this process's cgroup v2 path (default: /proc/self/cgroup)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    quota = cgroup_cpu_quota(cgroup_root, own_cgroup() if cgroup is None else cgroup)
    if quota is not None:
        cores = min(cores, math.ceil(quota))
    return max(1, cores)


def cgroup_cpu_quota(root: Path, cgroup: str = "/") -> float | None:
    """CPUs the cgroup quota allows (quota / period), or None if unlimited or not found.

    cgroup v2: `cpu.max` ("quota period" or "max period") of the process's cgroup and its
    ancestors (the tightest counts); cgroup v1: `cpu.cfs_quota_us` (-1: none) / `cpu.cfs_period_us`.
    """
    limits = []
    folder = root / cgroup.strip("/")
    for level in [folder, *folder.parents]:
        quota, _, period = (_read(level / "cpu.max") or "").partition(" ")
        limits.append(_limit(quota, period))
        if level == root:
            break
    for controller in ("cpu", "cpu,cpuacct", "cpuacct,cpu"):
        limits.append(_limit(_read(root / controller / "cpu.cfs_quota_us"), _read(root / controller / "cpu.cfs_period_us")))
    limits = [limit for limit in limits if limit is not None]
    return min(limits) if limits else None


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _limit(quota: str | None, period: str | None) -> float | None:
    """quota / period in CPUs; None for "max", -1, a missing file or junk (no limit known)."""
    try:
        ratio = int(quota) / int(period)  # type: ignore[arg-type]
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return ratio if ratio > 0 else None


def own_cgroup() -> str:
    """This process's cgroup v2 path ("0::/path" in /proc/self/cgroup), "/" if unknown."""
    for line in (_read(Path("/proc/self/cgroup")) or "").splitlines():
        if line.startswith("0::"):
            return line[3:] or "/"
    return "/"


def scheduler_records(client) -> dict[str, dict[str, Any]]:
    """Every worker's scheduler record by address (its host, task slots `nthreads`, `resources`),
    asked of the scheduler itself. Not `client.scheduler_info(n_workers=-1)`: it returns the
    client's cached copy, which the client's periodic refresh replaces with one that lists no
    workers (it asks for none), so a task reading it right after such a refresh found its own
    worker missing, and with it the worker's GPUs."""
    return client.sync(client.scheduler.identity, n_workers=-1)["workers"]


def all_workers(client) -> list[dict[str, Any]]:
    """Every worker's scheduler record."""
    return list(scheduler_records(client).values())


def host_slots(host: str, workers: Iterable[Mapping[str, Any]]) -> int:
    """Task slots (worker threads) on `host`: the trials it may run at once."""
    return sum(info.get("nthreads", 1) for info in workers if info.get("host") == host)
