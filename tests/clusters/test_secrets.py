"""No storage password in logs, errors, tables, the run folder or the report.

SQLite cannot take a user password, but SQLite URI filenames ignore query parameters they do
not know: `sqlite:///file:DB?mode=rwc&password=SECRET&uri=true` is a working storage whose URL
carries a secret where `mask_url` must find it. A PostgreSQL URL with a password that cannot
connect checks the error path.
"""

import pytest
import yaml

from tests.helpers import FAKE, dqn_sweep

SECRET = "Hunter2-s3cr3t"
pytestmark = pytest.mark.timeout(120)


def cli(*args, env=None):
    """`dqn-sweep ARGS` with `env` and no DQN_SWEEP_STORAGE but what `env` sets."""
    return dqn_sweep(*args, timeout=90, env={"DQN_SWEEP_STORAGE": None, **(env or {})})


def test_storage_password_never_leaks(tmp_path, monkeypatch):
    study = {
        "study": "secret", "env_id": "CartPole-v1",
        "trainer": {"total_timesteps": 300, "eval_freq": 100, "train_freq": 1},
        "space": {"learning_rate": {"type": "float", "low": 1e-3, "high": 1e-1, "log": True}},
        "budget": {"n_trials": 2}, "parallel": 2, "pruner": {"name": "none"}, "heldout": False,
    }
    path = tmp_path / "secret.yaml"
    path.write_text(yaml.safe_dump(study))
    url = f"sqlite:///file:{tmp_path / 'optuna.db'}?mode=rwc&password={SECRET}&uri=true"
    run_dir = tmp_path / "run"

    # the URL on the command line, then a rerun that continues with it from the environment
    first = cli("run", str(path), "--output", str(run_dir), "--entry", FAKE, "--storage", url)
    assert first.returncode == 0, first.stderr[-2000:]
    assert "storage: sqlite:///file:" in first.stdout and "password=***" in first.stdout  # masked
    second = cli("run", str(path), "--output", str(run_dir), "--entry", FAKE, "--n-trials", "3",
                 env={"DQN_SWEEP_STORAGE": url})
    assert second.returncode == 0, second.stderr[-2000:]
    # a database that cannot be reached: the error names the URL, masked
    broken = cli("run", str(path), "--output", str(tmp_path / "broken"), "--entry", FAKE,
                 "--storage", f"postgresql://dqn:{SECRET}@127.0.0.1:1/optuna")
    assert broken.returncode == 2 and "postgresql://dqn:***@127.0.0.1:1/optuna" in broken.stderr, broken.stderr
    for done in (first, second, broken):
        assert SECRET not in done.stdout + done.stderr

    # status/best/export/report read the folder (in this process, to spare three CLI start-ups):
    # the masked record needs the secret again, from the environment, else a clear error
    from sweeps.driver.session import run_sweep
    from sweeps.reporting.report import write_report
    from sweeps.results import trials_frame
    from sweeps.store.run_folder import load_run
    from sweeps.store.storage import StorageError
    from sweeps.study.loading import load_spec

    monkeypatch.delenv("DQN_SWEEP_STORAGE", raising=False)
    with pytest.raises(StorageError, match="DQN_SWEEP_STORAGE") as locked:
        load_run(run_dir)
    assert SECRET not in str(locked.value) and "password=***" in str(locked.value)
    with pytest.raises(StorageError, match="DQN_SWEEP_STORAGE"):  # `run` again: no silent new journal
        run_sweep(load_spec(path), run_dir, echo=lambda line: None)
    assert not (run_dir / "journal.log").exists()
    monkeypatch.setenv("DQN_SWEEP_STORAGE", url)
    study, _ = load_run(run_dir)
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 3
    assert SECRET not in trials_frame(study).to_csv()
    write_report(run_dir)

    files = [p for p in run_dir.rglob("*") if p.is_file()]
    assert {"run.json", "trials.parquet", "report.html", "journal.log"} - {p.name for p in files} == {"journal.log"}
    for file in files:
        assert SECRET.encode() not in file.read_bytes(), file
    assert "password=***" in (run_dir / "run.json").read_text()
