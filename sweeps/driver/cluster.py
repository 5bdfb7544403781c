"""The Dask cluster a sweep runs on: an embedded LocalCluster, or an existing scheduler (over
TLS with the `--tls-ca-file/--tls-cert/--tls-key` options, distributed's own names; without
them `Security()` reads the Dask config: `distributed.comm.tls.ca-file`,
`distributed.comm.tls.client.cert|key`, or `DASK_DISTRIBUTED__COMM__TLS__...` variables)."""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from distributed import Client, LocalCluster
from distributed.security import Security

from sweeps.worker.cores import all_workers

CONNECT_TIMEOUT_S = 10


class ClusterError(RuntimeError):
    """The scheduler cannot be reached or the cluster cannot run the study."""


class SecurityError(ValueError):
    """TLS options are incomplete or name missing files."""


def tls_security(ca_file: str | None, cert: str | None, key: str | None) -> Security | None:
    """A `Security` from the three TLS options, or None to let the Dask config decide.

    `cert` and `ca_file` are required together; `key` may be omitted when `cert` holds both.
    Encryption is required: a `tcp://` scheduler address is then refused, not used in clear.
    """
    given = {"--tls-ca-file": ca_file, "--tls-cert": cert, "--tls-key": key}
    if not any(given.values()):
        return None
    missing = [name for name in ("--tls-ca-file", "--tls-cert") if not given[name]]
    if missing:
        raise SecurityError(f"{' and '.join(missing)} missing: TLS needs the cluster's CA file and a client "
                            "certificate (plus --tls-key unless the certificate file holds the key)")
    for name, path in given.items():
        if path and not Path(path).is_file():
            raise SecurityError(f"{name} {path}: no such file")
    return Security(tls_ca_file=ca_file, tls_client_cert=cert, tls_client_key=key, require_encryption=True)


def tls_error_message(scheduler: str, error: Exception) -> str:
    """What to do when a client cannot talk to `scheduler` for TLS reasons."""
    text = str(error)
    if "ssl_context" in text or "TLS" in text:
        return (f"the scheduler {scheduler} speaks TLS but no client certificate was given: pass "
                "--tls-ca-file, --tls-cert and --tls-key (or set distributed.comm.tls.* in the Dask config)")
    if "encryption required" in text:
        return (f"TLS is required but the scheduler address {scheduler} is not tls://; use the scheduler's "
                f"tls:// address ({text})")
    return f"cannot connect to the Dask scheduler at {scheduler} ({type(error).__name__}: {text})"


def local_gpu_count() -> int:
    """GPUs this machine offers: `CUDA_VISIBLE_DEVICES` if set, else `nvidia-smi -L`."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip()])
    if shutil.which("nvidia-smi") is None:
        return 0
    try:
        listing = subprocess.run(["nvidia-smi", "-L"], check=False, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return 0
    return sum(1 for line in listing.stdout.splitlines() if line.startswith("GPU "))


@contextmanager
def connect(
    scheduler: str | None, parallel: int, gpus_per_trial: int, echo: Callable[[str], None], *,
    security: Security | None = None,
) -> Iterator[Client]:
    """A client on `scheduler`, or on a LocalCluster on 127.0.0.1 sized to `parallel`.

    CPU trials get one single-threaded worker process each. GPU trials share one worker
    process with `parallel` threads, so that its single GPU-id pool hands out distinct ids.
    """
    if scheduler:
        timeout = float(os.environ.get("DQN_SWEEP_CONNECT_TIMEOUT") or CONNECT_TIMEOUT_S)
        try:
            client = Client(scheduler, timeout=timeout, security=security)
        except (TypeError, RuntimeError) as error:  # TLS: no certificates, or tcp:// while TLS is required
            raise ClusterError(tls_error_message(scheduler, error)) from None
        except (OSError, TimeoutError, ValueError) as error:
            raise ClusterError(
                f"cannot reach the Dask scheduler at {scheduler} within {timeout:g} s ({error}); "
                "the study is saved: rerun to resume ($DQN_SWEEP_CONNECT_TIMEOUT sets the wait)"
            ) from None
        with client:
            echo(f"connected to scheduler {scheduler} ({len(all_workers(client))} workers)")
            yield client
        return
    dashboard = importlib.util.find_spec("bokeh") is not None
    kwargs = {
        "host": "127.0.0.1",
        "processes": True,
        "dashboard_address": "127.0.0.1:0",  # a free port; its HTTP routes exist even without bokeh
        "silence_logs": logging.ERROR,
    }
    if gpus_per_trial:
        gpus = local_gpu_count()
        if gpus < gpus_per_trial:
            raise ClusterError(f"resources.gpus = {gpus_per_trial} but this machine has {gpus} GPU(s)")
        cluster = LocalCluster(n_workers=1, threads_per_worker=parallel, resources={"GPU": gpus}, **kwargs)
    else:
        cluster = LocalCluster(n_workers=parallel, threads_per_worker=1, **kwargs)
    with cluster, Client(cluster) as client:
        link = client.dashboard_link if dashboard else "not available (pip install 'bokeh>=3.1')"
        echo(f"local cluster: {len(cluster.workers)} worker(s) on 127.0.0.1; dashboard: {link}")
        yield client
