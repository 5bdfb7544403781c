"""Shared test setup: quiet, single-threaded TensorFlow so two test processes share 2 cores, and
the real 2-worker LocalCluster the driver's tests run on (helpers: `tests/helpers.py`; real
PostgreSQL, Redis and the per-backend `storage_url` fixture: `tests/servers.py`)."""

import os

import pytest

from tests.helpers import local_client

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")

pytest_plugins = ["tests.servers"]


@pytest.fixture(scope="module")
def client():
    """A client of a real LocalCluster of 2 worker processes, shared by a module's tests (the
    stand-in trainer runs in their child processes)."""
    with local_client(2) as client:
        yield client
