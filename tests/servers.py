"""Real storage servers for the tests, started by the tests: a throwaway PostgreSQL cluster and a
Redis server, each in a temporary folder on a free localhost port, plus the `storage_url`
fixture that runs a test on each backend (journal, SQLite, PostgreSQL, Redis).

A missing server binary skips its tests on a developer's machine and fails them when
`DQN_SWEEP_REQUIRE_SERVERS` is set (CI sets it: `.ci/run` installs what is missing).
PostgreSQL's `initdb` refuses to run as root: as root, the cluster runs as the `postgres` user.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

REQUIRE = "DQN_SWEEP_REQUIRE_SERVERS"
BACKENDS = ("journal", "sqlite", "postgresql", "redis")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def missing(what: str) -> None:
    """Skip (a developer's machine) or fail (CI: `DQN_SWEEP_REQUIRE_SERVERS`)."""
    if os.environ.get(REQUIRE):
        pytest.fail(f"{what} is required ({REQUIRE}) but not installed")
    pytest.skip(f"{what} is not installed")


def wait_until(ready, what: str, timeout: float = 60.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        assert proc is None or proc.poll() is None, f"{what}: the server exited ({proc.returncode})"
        assert time.monotonic() < deadline, f"{what}: not ready within {timeout} s"
        time.sleep(0.1)


def postgres_bin() -> Path | None:
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    return versions[-1].parent if versions else None


class Postgres:
    """A PostgreSQL cluster in a temporary folder, listening on 127.0.0.1:`port` (trust auth)."""

    def __init__(self, bin_dir: Path):
        self.bin = bin_dir
        self.root = Path(tempfile.mkdtemp(prefix="dqn-sweep-pg-"))
        self.data, self.log = self.root / "data", self.root / "server.log"
        self.port = free_port()
        self.as_user: list[str] = []
        if os.geteuid() == 0:  # initdb refuses root
            shutil.chown(self.root, "postgres", "postgres")
            self.as_user = ["runuser", "-u", "postgres", "--"]

    def run(self, *args: str, timeout: float = 120) -> None:
        done = subprocess.run([*self.as_user, *args], capture_output=True, text=True, timeout=timeout, check=False)
        assert done.returncode == 0, f"{' '.join(args)}: {done.stdout}{done.stderr}{self.server_log()}"

    def server_log(self) -> str:
        return self.log.read_text()[-3000:] if self.log.exists() else ""

    def start(self) -> None:
        self.run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                 "--locale=C", "--no-sync")
        self.pg_ctl("start", "-o", f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1")

    def pg_ctl(self, *args: str) -> None:
        self.run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", *args)

    def restart(self) -> None:
        """`pg_ctl restart -m fast`: every session is cut, the server comes back with its data."""
        self.pg_ctl("restart", "-m", "fast")

    def stop(self) -> None:
        with contextlib.suppress(AssertionError, subprocess.TimeoutExpired):
            self.pg_ctl("stop", "-m", "immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A fresh empty database; its URL."""
        import psycopg

        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)


class Redis:
    """A redis-server in a temporary folder on 127.0.0.1:`port`, with an append-only file synced
    on every write (what a study needs to survive a kill of the server)."""

    def __init__(self, binary: str):
        self.binary = binary
        self.root = Path(tempfile.mkdtemp(prefix="dqn-sweep-redis-"))
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.root),
             "--appendonly", "yes", "--appendfsync", "always", "--save", "", "--daemonize", "no"],
            stdout=(self.root / "server.log").open("a"), stderr=subprocess.STDOUT, start_new_session=True)
        wait_until(self.answers, f"redis-server on port {self.port}", proc=self.proc)

    def answers(self) -> bool:
        import redis

        try:
            return bool(redis.Redis(port=self.port, socket_timeout=2).ping())
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
            return False

    def kill(self) -> None:
        """SIGKILL: no shutdown, no save; what survives is in the append-only file."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        self.kill()
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def flush(self) -> None:
        import redis

        redis.Redis(port=self.port).flushall()


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    bin_dir = postgres_bin()
    if bin_dir is None or not (bin_dir / "initdb").exists():
        missing("PostgreSQL (initdb, pg_ctl, postgres)")
    server = Postgres(bin_dir)
    try:
        server.start()
        yield server
    finally:
        server.stop()


def redis_binary() -> str:
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not Path(binary).exists():
        missing("redis-server")
    return binary


@contextlib.contextmanager
def running_redis() -> Iterator[Redis]:
    server = Redis(redis_binary())
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[Redis]:
    with running_redis() as server:
        yield server


@pytest.fixture
def own_redis() -> Iterator[Redis]:
    """A redis-server of the test's own, to kill and restart."""
    with running_redis() as server:
        yield server


@pytest.fixture(params=BACKENDS)
def storage_url(request, tmp_path) -> str | None:
    """A fresh study storage of each backend: None (the run folder's journal file), a SQLite
    file, a new PostgreSQL database, or an emptied Redis."""
    backend = request.param
    if backend == "journal":
        return None
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'study.db'}"
    if backend == "postgresql":
        return request.getfixturevalue("postgres").new_database()
    server = request.getfixturevalue("redis_server")
    server.flush()
    return server.url()
