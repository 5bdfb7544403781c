"""End to end over TLS: a real `dask scheduler` and two `dask worker` processes on 127.0.0.1,
certificates made here, the smoke study with the real trainer through `--scheduler tls://...`.
A worker without a certificate, or with one from another CA, cannot join; a client without
certificates gets a one-line error.
"""

import pytest
from certs import make_tls_files
from procs import dask_cluster, logs, start_worker, stop

from sweeps.results import load
from tests.helpers import dqn_sweep, wait_until

pytestmark = pytest.mark.timeout(180)


def test_smoke_study_over_tls_and_strangers_cannot_join(tmp_path):
    tls = make_tls_files(tmp_path / "tls")
    # a stranger that trusts the cluster's CA (it is no secret) but holds a cert from another CA
    stranger = {**make_tls_files(tmp_path / "stranger", name="stranger"), "ca": tls["ca"]}
    folder = tmp_path / "cluster"
    with dask_cluster(folder, tls=tls) as (address, security, _):
        assert address.startswith("tls://127.0.0.1:")
        rogues = [
            start_worker(address, folder, "no-cert", extra=["--death-timeout", "8"]),
            start_worker(address, folder, "other-ca", tls=stranger, extra=["--death-timeout", "8"]),
        ]
        refused = dqn_sweep("run", "studies/smoke.yaml", "--scheduler", address, "--output", str(tmp_path / "x"),
                            timeout=60)
        run_dir = tmp_path / "run"
        done = dqn_sweep("run", "studies/smoke.yaml", "--n-trials", "2", "--scheduler", address,
                         "--tls-ca-file", str(tls["ca"]), "--tls-cert", str(tls["cert"]),
                         "--tls-key", str(tls["key"]), "--output", str(run_dir), timeout=150)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:] + logs(folder)

        from distributed import Client

        with Client(address, security=security, timeout=20) as client:
            members = {info["name"]: addr for addr, info in client.scheduler_info()["workers"].items()}
        try:  # refused, they give up (--death-timeout) and exit
            wait_until(lambda: all(r.poll() is not None for r in rogues), "the strangers exited", 30, every=0.5)
        finally:
            for rogue in rogues:
                stop(rogue)

    assert refused.returncode == 2 and "--tls-ca-file" in refused.stderr and "Traceback" not in refused.stderr
    assert f"connected to scheduler {address} (2 workers)" in done.stdout
    assert "versions: 2 worker(s) match the driver" in done.stdout
    assert set(members) == {"w1", "w2"}, members  # the strangers never joined
    assert all(r.returncode not in (None, 0) for r in rogues), logs(folder)
    assert "TLS expects a `ssl_context`" in (folder / "no-cert.log").read_text()
    # the scheduler checked the stranger's certificate against the cluster CA and refused it
    assert "CERTIFICATE_VERIFY_FAILED" in (folder / "scheduler.log").read_text()

    trials = load(run_dir)["trials"]
    assert list(trials["state"]) == ["COMPLETE"] * 2
    assert (trials["env_steps"] == 2000).all()
    assert set(trials["worker"]) <= set(members.values())
    assert all(w.startswith("tls://127.0.0.1:") for w in trials["worker"])
    assert len(load(run_dir)["evals"]) == 2 * 4
