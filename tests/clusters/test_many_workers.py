"""More than 5 workers: thread sizing and the connect message count every one of them.

distributed 2025.5 to 2026.6 return only 5 workers from `Client.scheduler_info()` unless asked
for all; 7 single-thread workers on one host must give that host 7 task slots.
"""

import pytest
from distributed import Client, get_client, get_worker

from sweeps.driver.cluster import connect
from sweeps.worker.cores import all_workers, host_slots
from tests.helpers import local_cluster

pytestmark = pytest.mark.timeout(60)
WORKERS = 7


def slots_seen_by_a_task() -> int:
    """What `train_task` computes on its worker before sizing the child's threads."""
    return host_slots(get_worker().host, all_workers(get_client()))


@pytest.fixture(scope="module")
def seven_workers():
    # processes=False keeps 7 workers cheap; tcp (not inproc) gives them a host, as real workers have
    with local_cluster(WORKERS, processes=False, protocol="tcp") as cluster:
        yield cluster


def test_a_task_counts_every_slot_on_its_host(seven_workers):
    with Client(seven_workers) as client:
        assert len(client.scheduler_info(n_workers=-1)["workers"]) == WORKERS
        assert client.submit(slots_seen_by_a_task, pure=False).result() == WORKERS


def test_the_connect_message_counts_every_worker(seven_workers):
    said = []
    with connect(seven_workers.scheduler_address, 1, 0, said.append):
        pass
    assert said == [f"connected to scheduler {seven_workers.scheduler_address} ({WORKERS} workers)"]
