"""The command line around sweeps (the stand-in trainer): one-line errors (exit 2), help, Ctrl-C
then resume, an existing scheduler with an SQLite storage."""

import signal
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.helpers import BIN, DQN_SWEEP, FAKE, ROOT, local_cluster, wait_until
from tests.helpers import dqn_sweep as cli

pytestmark = pytest.mark.timeout(120)


def test_invalid_study_file_is_a_one_line_error_before_anything_starts(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("study: x\nspace: {learning_rate: {type: float, low: 1, high: 0}}\n")
    done = cli("run", str(path), "--output", str(tmp_path / "run"))
    assert done.returncode == 2
    assert done.stderr.startswith(f"error: {path}: space.learning_rate")
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["status", "nowhere"], "nowhere: not a run folder"),
        (["best", "nowhere"], "nowhere: not a run folder"),
        (["export", "nowhere", "--format", "xlsx"], "--format 'xlsx': allowed: parquet, csv"),
        (["run", "studies/smoke.yaml", "--storage", "ftp://x"], "unknown scheme 'ftp'"),
        (["run", "studies/smoke.yaml", "--n-trials", "0"], "budget.n_trials = 0"),
    ],
)
def test_errors_are_one_line(args, message):
    done = cli(*args)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("command", ["run", "status", "best", "export"])
def test_help(command):
    done = cli(command, "--help")
    assert done.returncode == 0 and "Usage" in done.stdout


def trials_asked(run_dir: Path) -> int:
    from sweeps.store.run_folder import load_run

    try:
        study, _ = load_run(run_dir)
    except Exception:  # noqa: BLE001 - not written yet
        return 0
    return sum("seeds" in t.user_attrs for t in study.get_trials(deepcopy=False))


def test_ctrl_c_marks_running_trials_and_a_rerun_resumes(tmp_path):
    study = {
        "study": "slow", "env_id": "CartPole-v1",
        "trainer": {"total_timesteps": 1000, "eval_freq": 100, "train_freq": 1000},  # ~10 s a run
        "space": {"learning_rate": {"type": "float", "low": 1e-3, "high": 1e-1, "log": True}},
        "budget": {"n_trials": 2}, "parallel": 2, "pruner": {"name": "none"}, "heldout": False,
    }
    path = tmp_path / "slow.yaml"
    path.write_text(yaml.safe_dump(study))
    run_dir = tmp_path / "run"
    args = ["run", str(path), "--output", str(run_dir), "--entry", FAKE]
    proc = subprocess.Popen([DQN_SWEEP, *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # noqa: PLW1509
    # the cluster may take seconds to start on a busy machine
    wait_until(lambda: trials_asked(run_dir) >= 2, "the sweep asked two trials", 60, every=0.2, proc=proc)
    wait_until(lambda: len(list(run_dir.glob("checkpoints/*/*/state.json"))) >= 2, "both runs checkpointed",
               60, proc=proc)  # their runs started
    proc.send_signal(signal.SIGINT)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, output
    assert "resume with: dqn-sweep run" in output
    status = cli("status", str(run_dir)).stdout
    assert "2 fail" in status and "2 waiting" in status and "interrupted" in status

    study["trainer"]["train_freq"] = 1
    path.write_text(yaml.safe_dump(study))
    cli(*args, timeout=90, check=True)
    status = cli("status", str(run_dir)).stdout
    assert "2 complete" in status and "2 fail" in status and "waiting" not in status


def test_existing_scheduler_and_an_sqlite_storage(tmp_path):
    study = {
        "study": "remote", "env_id": "CartPole-v1",
        "trainer": {"total_timesteps": 500, "eval_freq": 100, "train_freq": 1},
        "space": {"learning_rate": {"type": "float", "low": 1e-3, "high": 1e-1, "log": True}},
        "budget": {"n_trials": 3}, "parallel": 2, "pruner": {"name": "none"},
    }
    path = tmp_path / "remote.yaml"
    path.write_text(yaml.safe_dump(study))
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    run_dir = tmp_path / "run"
    with local_cluster(2) as cluster:
        done = cli("run", str(path), "--scheduler", cluster.scheduler_address, "--storage", url,
                   "--output", str(run_dir), "--entry", FAKE, timeout=90)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"connected to scheduler {cluster.scheduler_address} (2 workers)" in done.stdout
    assert not (run_dir / "journal.log").exists()
    assert "3 complete" in cli("status", str(run_dir)).stdout
    listed = subprocess.run([str(BIN / "optuna"), "trials", "--storage", url, "--study-name", "remote",
                             "-f", "json"], check=False, capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0 and listed.stdout.count('"COMPLETE"') == 3
