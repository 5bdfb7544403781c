"""How many threads a trial's child gets: the cores the worker may use (affinity, cgroup quota),
shared among every task slot on its host."""

import os

import pytest

from sweeps.worker.cores import auto_threads, available_cores, cgroup_cpu_quota, host_slots


@pytest.mark.parametrize("cores, slots, threads", [(8, 2, 4), (64, 16, 4), (2, 7, 1), (4, 0, 4), (5, 2, 2)])
def test_auto_threads_share_the_cores_among_the_slots(cores, slots, threads):
    assert auto_threads(cores, slots) == threads


def test_host_slots_count_every_thread_of_every_worker_on_the_host():
    workers = [{"host": "a", "nthreads": 1}, {"host": "a", "nthreads": 3}, {"host": "a"}, {"host": "b", "nthreads": 4}]
    assert host_slots("a", workers) == 5
    assert host_slots("c", workers) == 0


def cgroup(tmp_path, files):
    """A fake cgroup file system: {relative path: content}."""
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n")
    return tmp_path


@pytest.mark.parametrize("files, cgroup_path, cpus", [
    ({}, "/", None),
    ({"cpu.max": "max 100000"}, "/", None),
    ({"cpu.max": "150000 100000"}, "/", 1.5),
    ({"cpu.max": "400000 100000", "kubepods/pod1/cpu.max": "max 100000", "kubepods/pod1/c1/cpu.max": "200000 100000"},
     "/kubepods/pod1/c1", 2.0),  # the tightest of the cgroup and its ancestors
    ({"cpu.max": "50000 100000"}, "/not/mounted/here", 0.5),
    ({"cpu/cpu.cfs_quota_us": "300000", "cpu/cpu.cfs_period_us": "100000"}, "/", 3.0),  # v1
    ({"cpu,cpuacct/cpu.cfs_quota_us": "-1", "cpu,cpuacct/cpu.cfs_period_us": "100000"}, "/", None),
    ({"cpu.max": "junk"}, "/", None),
])
def test_cgroup_cpu_quota(tmp_path, files, cgroup_path, cpus):
    assert cgroup_cpu_quota(cgroup(tmp_path, files), cgroup_path) == cpus


@pytest.fixture
def two_cpus():
    """This thread pinned to two CPUs (restored after): tests see a known affinity."""
    mine = sorted(os.sched_getaffinity(0))
    if len(mine) < 2:
        pytest.skip("needs 2 CPUs")
    os.sched_setaffinity(0, mine[:2])
    yield mine[:2]
    os.sched_setaffinity(0, mine)


def test_available_cores_take_affinity_and_quota(tmp_path, two_cpus):
    assert available_cores(cgroup(tmp_path / "none", {}), "/") == 2
    assert available_cores(cgroup(tmp_path / "max", {"cpu.max": "max 100000"}), "/") == 2
    assert available_cores(cgroup(tmp_path / "half", {"cpu.max": "50000 100000"}), "/") == 1
    assert available_cores(cgroup(tmp_path / "1.5", {"cpu.max": "150000 100000"}), "/") == 2  # rounded up
    assert available_cores(cgroup(tmp_path / "16", {"cpu.max": "1600000 100000"}), "/") == 2  # affinity caps
    os.sched_setaffinity(0, two_cpus[:1])
    assert available_cores(tmp_path / "none", "/") == 1
