"""Real `dask scheduler` / `dask worker` processes on 127.0.0.1 for the cluster tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from contextlib import contextmanager
from pathlib import Path

from tests.helpers import BIN, ROOT, wait_until


def tls_args(tls: dict[str, Path] | None) -> list[str]:
    if not tls:
        return []
    return ["--tls-ca-file", str(tls["ca"]), "--tls-cert", str(tls["cert"]), "--tls-key", str(tls["key"])]


def start(args: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [str(BIN / "dask"), *args], cwd=ROOT, stdout=log.open("w"), stderr=subprocess.STDOUT,
        env={**os.environ, **(env or {})}, start_new_session=True,  # its own group: stop() ends nanny + worker
    )


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        except ProcessLookupError:
            pass


def start_worker(address: str, folder: Path, name: str, *, tls=None, extra=(), env=None) -> subprocess.Popen:
    return start([
        "worker", address, "--host", "127.0.0.1", "--nworkers", "1", "--no-dashboard", "--name", name,
        *tls_args(tls), *extra,
    ], folder / f"{name}.log", env)


@contextmanager
def dask_cluster(folder: Path, *, tls=None, workers=(("w1", ()), ("w2", ())), env=None, timeout=60.0):
    """Start a scheduler and workers; yield (address, security, worker procs); stop them all."""
    folder.mkdir(parents=True, exist_ok=True)
    scheduler_file = folder / "scheduler.json"

    def address_in_file() -> str | None:
        try:
            return json.loads(scheduler_file.read_text())["address"]
        except (FileNotFoundError, json.JSONDecodeError, KeyError):  # not (all) written yet
            return None

    procs = [start([
        "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard", "--scheduler-file", str(scheduler_file),
        *(["--protocol", "tls"] if tls else []), *tls_args(tls),
    ], folder / "scheduler.log", env)]
    try:
        try:
            address = wait_until(address_in_file, "the scheduler's address in its file", timeout, every=0.2,
                                 proc=procs[0])
        except AssertionError as error:
            raise AssertionError(f"{error}\n{(folder / 'scheduler.log').read_text()}") from None
        worker_procs = [start_worker(address, folder, name, tls=tls, extra=list(extra), env=env)
                        for name, extra in workers]
        procs += worker_procs
        security = None
        if tls:
            from distributed.security import Security

            security = Security(tls_ca_file=str(tls["ca"]), tls_client_cert=str(tls["cert"]),
                                tls_client_key=str(tls["key"]), require_encryption=True)
        from distributed import Client

        with Client(address, security=security, timeout=timeout) as client:
            client.wait_for_workers(len(worker_procs), timeout=timeout)
        yield address, security, worker_procs
    finally:
        for proc in reversed(procs):
            stop(proc)


def logs(folder: Path) -> str:
    return "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted(folder.glob("*.log")))
