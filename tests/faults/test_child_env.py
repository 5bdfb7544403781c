"""A trial's child gets an allowlisted environment, and no worker secret reaches a fail reason.

The leaky trainer prints the child's environment and its worker's (read from /proc) to stderr,
then crashes: its stderr tail becomes `fail_reason`, which goes to the Optuna storage, the
tables and the report. Every secret value below holds SECRET_MARK, so one search finds any of
them wherever it ends up.
"""

import json

import pytest
from optuna.trial import TrialState

from sweeps.driver.session import run_sweep
from sweeps.reporting.report import write_report
from sweeps.results import load
from sweeps.study.loading import parse_spec
from sweeps.worker.task import train_task
from tests.helpers import local_client

pytestmark = pytest.mark.timeout(120)
LEAKY = "tests.fakes.faulty_trainer:leaky_population"
SECRET_MARK = "s3cr3t"
WORKER_ENV = {
    "AWS_SECRET_ACCESS_KEY": f"aws-{SECRET_MARK}-0001",  # not allowlisted; a secret's name
    "DQN_SWEEP_API_TOKEN": f"tok-{SECRET_MARK}-0002",  # an allowlisted family, but a secret's name
    "DATABASE_URL": f"postgresql://app:url-{SECRET_MARK}-0004@db.internal/app",  # a password in a URL
    "PLAIN_UNLISTED": "plain-value",  # not allowlisted, not secret: stays on the worker
    "MY_TRIAL_SETTING": "for-the-trial",  # named in resources.env
}
STUDY = {
    "study": "leaky", "env_id": "CartPole-v1",
    "trainer": {"total_timesteps": 300, "eval_freq": 100, "train_freq": 1},
    "space": {"learning_rate": {"type": "float", "low": 1e-3, "high": 1e-1, "log": True}},
    "budget": {"n_trials": 1, "max_failed": 0}, "parallel": 1, "pruner": {"name": "none"},
    "resources": {"env": ["MY_TRIAL_SETTING"]}, "heldout": False,
}


def dumped(reason: str, label: str) -> dict[str, str]:
    """The environment the leaky trainer printed on the `label: {...}` line of `reason`."""
    (line,) = [line for line in reason.splitlines() if line.startswith(f"{label}: ")]
    return json.loads(line.removeprefix(f"{label}: "))


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """One real sweep (`dqn-sweep run`'s code, its own LocalCluster) whose only trial leaks;
    the secrets are in the environment before the cluster starts, so its workers inherit them.
    The storage URL in DQN_SWEEP_STORAGE carries a password too (SQLite ignores it)."""
    folder = tmp_path_factory.mktemp("leaky")
    storage = f"sqlite:///file:{folder / 'optuna.db'}?mode=rwc&password=pg-{SECRET_MARK}-0003&uri=true"
    said: list[str] = []
    with pytest.MonkeyPatch.context() as patch:
        for name, value in {**WORKER_ENV, "DQN_SWEEP_STORAGE": storage}.items():
            patch.setenv(name, value)
        study, tally = run_sweep(parse_spec(STUDY), folder / "run", echo=said.append, entry=LEAKY)
        write_report(folder / "run")
    return study, tally, folder / "run", said


def test_no_worker_secret_reaches_the_reason_tables_or_run_folder(sweep):
    study, tally, run_dir, said = sweep
    assert tally.failed == 1 and [t.state for t in study.trials] == [TrialState.FAIL]
    reason = study.trials[0].user_attrs["fail_reason"]
    assert reason.startswith("seed 0: child exited with status 1; stderr tail:"), reason[:300]
    assert SECRET_MARK not in reason

    child, worker = dumped(reason, "child env"), dumped(reason, "worker env")
    assert worker["PLAIN_UNLISTED"] == "plain-value"  # the worker really held them all ...
    assert worker["AWS_SECRET_ACCESS_KEY"] == worker["DQN_SWEEP_STORAGE"] == "***"  # ... masked on the way out
    assert worker["DATABASE_URL"] == "postgresql://app:***@db.internal/app"
    assert {"AWS_SECRET_ACCESS_KEY", "DATABASE_URL", "PLAIN_UNLISTED", "DQN_SWEEP_STORAGE",
            "DQN_SWEEP_API_TOKEN"}.isdisjoint(child)
    assert worker["DQN_SWEEP_API_TOKEN"] == "***" and "PATH" in child
    assert child["CUDA_VISIBLE_DEVICES"] == "" and child["PYTHONUNBUFFERED"] == "1"  # what the task sets

    trials = load(run_dir)["trials"]
    assert list(trials["state"]) == ["FAIL"] and trials["fail_reason"].str.startswith("seed 0: child exited").all()
    assert SECRET_MARK not in trials.to_csv()
    files = [path for path in run_dir.rglob("*") if path.is_file()]
    assert {"run.json", "trials.parquet", "report.html"} <= {path.name for path in files}
    for path in files:
        assert SECRET_MARK.encode() not in path.read_bytes(), path
    assert SECRET_MARK not in "\n".join(said)


def test_a_sweep_passes_the_variables_its_study_names(sweep):
    study, _, _, _ = sweep
    assert dumped(study.trials[0].user_attrs["fail_reason"], "child env")["MY_TRIAL_SETTING"] == "for-the-trial"


def test_a_task_passes_the_variables_its_payload_names(monkeypatch, tmp_path):
    for name, value in WORKER_ENV.items():
        monkeypatch.setenv(name, value)
    payload = {"configs": [{"env_id": "CartPole-v1", "total_timesteps": 300, "eval_freq": 100}],
               "parts": [[0, [0]]], "topic": "leaky", "stop_events": {"0": "leaky-stop-0"},
               "cpu_threads": "auto", "entry": LEAKY, "run_dir": str(tmp_path), "checkpoint": "checkpoints/0",
               "env": ["MY_TRIAL_SETTING"]}
    with local_client(1, processes=False, protocol="tcp") as client:
        outcome = client.submit(train_task, payload, pure=False).result()
    assert outcome["status"] == "failed" and SECRET_MARK not in json.dumps(outcome)
    child = dumped(outcome["reason"], "child env")
    assert child["MY_TRIAL_SETTING"] == "for-the-trial"
    assert "PLAIN_UNLISTED" not in child and "AWS_SECRET_ACCESS_KEY" not in child
