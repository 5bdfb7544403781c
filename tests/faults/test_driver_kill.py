"""`dqn-sweep run` SIGKILLed mid-sweep (real trainer, smoke study), then run again: the budget
is finished, earlier results are intact, and no trial is left RUNNING."""

import os
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest

from sweeps.results import load, trials_frame
from sweeps.store.run_folder import load_run
from sweeps.store.storage import StorageError
from tests.helpers import DQN_SWEEP, ROOT, dqn_sweep, study_file


def wait_for_a_complete_and_a_checkpointed_trial(run_dir: Path, proc: subprocess.Popen, timeout: float) -> pd.DataFrame:
    """The trials (as in the trials table) once a trial is COMPLETE in the journal and a
    running one has checkpointed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            trials = trials_frame(load_run(run_dir)[0])
        except (OSError, ValueError, KeyError, StorageError):  # not there yet
            trials = pd.DataFrame()
        if len(trials) and (trials["state"] == "COMPLETE").any():
            done = set(trials.loc[trials["state"] == "COMPLETE", "number"])
            saved = {int(p.parent.parent.name.removeprefix("trial-")) for p in run_dir.glob("checkpoints/*/*/state.json")}
            if saved - done:
                return trials
        time.sleep(0.1)
    raise AssertionError(f"no trial finished and another checkpointed (exit code {proc.poll()})")


@pytest.mark.timeout(240)
def test_killed_driver_resumes_with_earlier_results_intact(tmp_path):
    run_dir = tmp_path / "run"
    # The Python loop, 4000 steps: a trial runs for seconds after its first checkpoint, time for
    # the wait below to see one finished and another checkpointed (the compiled loop trains the
    # smoke study's 2000 steps in well under a second once compiled).
    study = study_file(tmp_path, trainer={"loop": "python", "total_timesteps": 4000})
    args = ["run", str(study), "--output", str(run_dir), "--n-trials", "3"]
    proc = subprocess.Popen([DQN_SWEEP, *args], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    before = wait_for_a_complete_and_a_checkpointed_trial(run_dir, proc, timeout=150)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    study, _ = load_run(run_dir)
    lost = [t.number for t in study.trials if t.state.name == "RUNNING"]
    assert lost, "the kill should leave a trial RUNNING"
    checkpointed = {n for n in lost if list(run_dir.glob(f"checkpoints/trial-{n}/seed-0/state.json"))}
    assert checkpointed, "the kill should leave a RUNNING trial with a checkpoint"

    done = dqn_sweep(*args, timeout=200, check=True)
    assert "smoke: 3 trials finished" in done.stdout

    study, _ = load_run(run_dir)
    states = {t.number: t.state.name for t in study.trials}
    assert "RUNNING" not in states.values()
    assert list(states.values()).count("COMPLETE") == 3  # the budget counts finished trials only
    for number in lost:
        assert states[number] == "FAIL"
        assert study.trials[number].user_attrs["fail_reason"] == "driver lost"
        (again,) = [t for t in study.trials if t.user_attrs.get("requeued_from") == number]
        assert again.state.name == "COMPLETE" and again.params == study.trials[number].params
    for number in checkpointed:  # the re-queued trial picked up where the dead one was
        (again,) = [t for t in study.trials if t.user_attrs.get("requeued_from") == number]
        assert again.user_attrs["resumed_from_step"] >= 500
    after = load(run_dir)["trials"].set_index("number")
    kept = before[before["state"] == "COMPLETE"].set_index("number")
    columns = [c for c in kept.columns if c.startswith("params_")] + [
        "state", "value", "datetime_start", "datetime_complete", "env_steps", "worker"]
    pd.testing.assert_frame_equal(after.loc[kept.index, columns], kept[columns], check_dtype=False)
    assert not list(run_dir.glob("checkpoints/*"))  # removed once the runs ended
