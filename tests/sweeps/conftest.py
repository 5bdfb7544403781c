"""A real 2-worker LocalCluster for the driver tests of a module (fake trainer in the children)."""

import logging

import pytest
from distributed import Client, LocalCluster

FAKE = "tests.sweeps.fake_trainer:train_population"


@pytest.fixture(scope="module")
def client():
    with LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1", processes=True,
                      dashboard_address="127.0.0.1:0", silence_logs=logging.ERROR) as cluster, \
            Client(cluster) as client:
        yield client
