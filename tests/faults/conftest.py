"""Fault tests: a 2-worker LocalCluster configured like `dqn-sweep run`'s embedded one."""

import logging

import dask
import pytest
from distributed import Client, LocalCluster


@pytest.fixture
def client():
    # As in sweeps.session: a dead worker's task comes back as KilledWorker, the driver retries.
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}), \
            LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1", processes=True,
                         dashboard_address=None, silence_logs=logging.ERROR) as cluster, \
            Client(cluster) as client:
        yield client
