"""Fault tests: a fresh 2-worker LocalCluster for each test (they kill workers), configured like
`dqn-sweep run`'s embedded one."""

import dask
import pytest

from tests.helpers import local_client


@pytest.fixture
def client():
    # As in sweeps.driver.session: a dead worker's task comes back as KilledWorker, the driver retries.
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}), local_client(2) as client:
        yield client
