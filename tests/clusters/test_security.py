"""Units of the security layer: URL masking, storage resolution, TLS options, version check,
and the embedded LocalCluster listening on 127.0.0.1 only."""

import pytest

from sweeps.driver.cluster import SecurityError, tls_security
from sweeps.driver.versions import (
    VersionMismatch,
    check_worker_versions,
    local_versions,
    mismatches,
)
from sweeps.secrets import mask_url, scrub, secrets_of
from sweeps.store.storage import StorageError, expand_url, storage_for_reading, storage_for_run

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize("url, masked", [
    ("postgresql://user:pw@db:5432/optuna", "postgresql://user:***@db:5432/optuna"),
    ("postgresql+psycopg2://user:p%40ss@db/optuna", "postgresql+psycopg2://user:***@db/optuna"),
    ("mysql+pymysql://u:a@b@db/optuna?passwd=x&charset=utf8", "mysql+pymysql://u:***@db/optuna?passwd=***&charset=utf8"),
    ("redis://:token@cache:6379/0", "redis://:***@cache:6379/0"),
    ("rediss://default:token@cache:6380", "rediss://default:***@cache:6380"),
    ("postgresql://user:${DB_PASSWORD}@db/optuna", "postgresql://user:${DB_PASSWORD}@db/optuna"),
    ("postgresql://user@db/optuna", "postgresql://user@db/optuna"),
    ("sqlite:///runs/optuna.db", "sqlite:///runs/optuna.db"),
    ("runs/x/journal.log", "runs/x/journal.log"),
    (None, None),
])
def test_mask_url(url, masked):
    assert mask_url(url) == masked


def test_scrub_removes_raw_and_decoded_secrets():
    url = "postgresql://user:p%40ss@db/optuna"
    assert scrub("FATAL: password p@ss / p%40ss rejected", secrets_of(url)) == "FATAL: password *** / *** rejected"


def test_expand_url(monkeypatch):
    monkeypatch.setenv("DB_PASSWORD", "pw")
    assert expand_url("postgresql://u:${DB_PASSWORD}@db/x") == "postgresql://u:pw@db/x"
    monkeypatch.delenv("DB_PASSWORD")
    with pytest.raises(StorageError, match=r"refers to \$\{DB_PASSWORD\}, which is not set"):
        expand_url("postgresql://u:${DB_PASSWORD}@db/x")


def test_storage_resolution(monkeypatch):
    monkeypatch.delenv("DQN_SWEEP_STORAGE", raising=False)
    assert storage_for_run(None) is None
    assert storage_for_reading(None, None) is None  # the run folder's journal
    assert storage_for_reading(None, "sqlite:///x.db") == "sqlite:///x.db"
    assert storage_for_reading("sqlite:///y.db", "postgresql://u:***@db/x") == "sqlite:///y.db"
    with pytest.raises(StorageError, match="set DQN_SWEEP_STORAGE"):
        storage_for_reading(None, "postgresql://u:***@db/x")
    monkeypatch.setenv("DQN_SWEEP_STORAGE", "postgresql://u:pw@db/x")
    assert storage_for_run(None) == "postgresql://u:pw@db/x"
    assert storage_for_reading(None, "postgresql://u:***@db/x") == "postgresql://u:pw@db/x"
    assert storage_for_reading(None, None) is None  # a journal run folder ignores the variable
    with pytest.raises(StorageError, match="holds another URL: postgresql://u:\\*\\*\\*@db/other") as error:
        monkeypatch.setenv("DQN_SWEEP_STORAGE", "postgresql://u:pw@db/other")
        storage_for_reading(None, "postgresql://u:***@db/x")
    assert "pw" not in str(error.value).replace("password", "")


def test_tls_options(tmp_path):
    assert tls_security(None, None, None) is None
    with pytest.raises(SecurityError, match="--tls-cert missing"):
        tls_security(str(tmp_path / "ca.pem"), None, None)
    with pytest.raises(SecurityError, match="--tls-ca-file .*ca.pem: no such file"):
        tls_security(str(tmp_path / "ca.pem"), str(tmp_path / "c.pem"), None)
    for name in ("ca.pem", "c.pem", "k.pem"):
        (tmp_path / name).write_text("x")
    security = tls_security(str(tmp_path / "ca.pem"), str(tmp_path / "c.pem"), str(tmp_path / "k.pem"))
    assert security.require_encryption and security.tls_ca_file == str(tmp_path / "ca.pem")
    assert security.tls_client_cert == str(tmp_path / "c.pem") and security.tls_client_key == str(tmp_path / "k.pem")


class FakeClient:
    def __init__(self, workers):
        self.workers = workers

    def get_versions(self, packages):
        assert {"dqn-sweep", "tensorflow", "gymnasium"} <= set(packages)
        return {"scheduler": {}, "client": {}, "workers": self.workers}


def worker(**packages):
    return {"packages": {k.replace("_", "-"): v for k, v in packages.items()}}


def test_version_check():
    mine = local_versions()
    same = worker(dqn_sweep=mine["dqn-sweep"], tensorflow=mine["tensorflow"], gymnasium=mine["gymnasium"])
    # tensorflow-cpu counts as tensorflow
    cpu = worker(dqn_sweep=mine["dqn-sweep"], tensorflow=None, tensorflow_cpu=mine["tensorflow"],
                 gymnasium=mine["gymnasium"])
    old = worker(dqn_sweep=mine["dqn-sweep"], tensorflow="2.15.0", gymnasium=mine["gymnasium"])
    bare = worker()
    assert mismatches(mine, {"tls://a:1": same, "tls://b:1": cpu}) == []
    lines = mismatches(mine, {"tls://a:1": same, "tls://c:1": old, "tls://d:1": bare})
    assert lines[0] == f"tls://c:1: tensorflow 2.15.0 (driver {mine['tensorflow']})"
    assert lines[1].startswith("tls://d:1: dqn-sweep missing") and "gymnasium missing" in lines[1]

    said = []
    assert check_worker_versions(FakeClient({"tls://a:1": same}), said.append) == []
    assert "1 worker(s) match the driver" in said[-1]
    with pytest.raises(VersionMismatch, match="(?s)1 of 2 worker.*tls://c:1: tensorflow 2.15.0.*--allow-version-mismatch"):
        check_worker_versions(FakeClient({"tls://a:1": same, "tls://c:1": old}), said.append)
    check_worker_versions(FakeClient({"tls://c:1": old}), said.append, strict=False)
    assert said[-1].startswith("warning: 1 of 1 worker(s)")
    check_worker_versions(FakeClient({}), said.append)
    assert "no worker connected yet" in said[-1]


def test_embedded_cluster_listens_on_localhost_only():
    import psutil

    from sweeps.driver.cluster import connect

    said = []
    with connect(None, 2, 0, said.append) as client:
        info = client.scheduler_info()
        addresses = [info["address"], *info["workers"]]
        me = psutil.Process()
        listening = [c.laddr for p in [me, *me.children(recursive=True)]
                     for c in p.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN]
    assert len(addresses) == 3 and all(a.startswith("tcp://127.0.0.1:") for a in addresses)
    assert len(listening) >= 3 and {addr.ip for addr in listening} == {"127.0.0.1"}, listening
    assert "on 127.0.0.1" in said[0]
