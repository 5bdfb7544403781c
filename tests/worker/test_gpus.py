"""Concurrent trials on one worker never share a GPU id (simulated ids, no GPU needed)."""

import threading
import time

import pytest

from sweeps.worker.gpus import DevicePool

pytestmark = pytest.mark.timeout(60)


def test_concurrent_leases_never_share_an_id():
    pool = DevicePool([str(i) for i in range(4)])
    held: set[str] = set()
    guard = threading.Lock()
    clashes, leases = [], []

    def trial(count: int) -> None:
        for _ in range(20):
            with pool.lease(count) as ids:
                with guard:
                    if held & set(ids):
                        clashes.append(ids)
                    held.update(ids)
                    leases.append(ids)
                time.sleep(0.001)
                with guard:
                    held.difference_update(ids)

    threads = [threading.Thread(target=trial, args=(k,)) for k in (1, 1, 2, 2, 1, 3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not clashes
    assert len(leases) == 120 and all(len(set(ids)) == len(ids) for ids in leases)
    assert sorted(pool.acquire(4)) == ["0", "1", "2", "3"]  # everything came back


def test_asking_for_more_than_the_worker_has_is_a_clear_error():
    with pytest.raises(RuntimeError, match="asks for 3 GPUs but this worker has 2"):
        DevicePool(["0", "1"]).acquire(3)


def test_waiting_for_ids_times_out():
    pool = DevicePool(["0"])
    pool.acquire(1)
    with pytest.raises(RuntimeError, match="no 1 free GPU ids"):
        pool.acquire(1, timeout=0.05)


def test_zero_gpus_lease_nothing():
    with DevicePool([]).lease(0) as ids:
        assert ids == []
