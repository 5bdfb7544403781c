"""The run folder's tables as append-only datasets: read as one, whole trials only, no duplicates,
readable after a kill at any moment, and the single-file tables of earlier versions still load.

`tests/data/legacy_run` is a run folder written by the version before the datasets (commit
9c0b0b1: the driver on the fake trainer, 3 trials x 2 seeds, study "legacy"): its three tables
and journal.
"""

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest

from sweeps.results import ResultsError, load
from sweeps.store.writer import ResultsWriter
from tests.helpers import LEGACY_RUN as LEGACY
from tests.helpers import ROOT, wait_until


def runs_of(number: int, seeds=(0, 1), evals: int = 3, episodes: int = 4) -> dict:
    """What the driver hands the writer for one trial: seed -> evaluations and episodes."""
    return {seed: {
        "evals": [{"step": 100 * (k + 1), "mean_return": number + seed + k, "std_return": 1.0, "min_return": 0.0,
                   "max_return": 2.0, "env_steps": 100 * (k + 1) + seed} for k in range(evals)],
        "episodes": [{"episode": k, "step": 10 * (k + 1), "return": float(k), "length": 10} for k in range(episodes)],
    } for seed in seeds}


def finish(study: optuna.Study, writer: ResultsWriter, number: int, **sizes) -> None:
    """What the driver does when trial `number` ends: tell the study, then hand the writer its rows."""
    trial = study.ask()
    assert trial.number == number
    study.tell(trial, trial.suggest_float("x", 0, 1))
    writer.changed()
    writer.add_trial(number, runs_of(number, **sizes))
    writer.flush()  # what the writer's thread does within `flush_every`


def wait_for(path: Path, timeout: float = 30) -> None:
    wait_until(path.exists, f"{path} written", timeout)


def thread_flushes(writer: ResultsWriter) -> list[None]:
    """A list that grows by one each time `writer`'s own thread has finished a flush."""
    flushes: list[None] = []
    flush = writer.flush

    def counted(final: bool = False) -> None:
        flush(final)
        if threading.current_thread() is writer.thread:
            flushes.append(None)

    writer.flush = counted
    return flushes


def test_two_sessions_load_as_one_dataset_without_duplicates(tmp_path):
    study = optuna.create_study(direction="maximize")
    first = ResultsWriter(tmp_path, study, merge_every=3, flush_every=3600)
    for number in range(5):  # 0-2 merged into a batch, 3-4 left as part files ...
        finish(study, first, number)
    # ... then killed (no close); a resumed session goes on in the same folder
    second = ResultsWriter(tmp_path, study, merge_every=3, flush_every=3600)
    for number in range(5, 9):
        finish(study, second, number)
    second.close()
    tables = load(tmp_path)
    evals, episodes = tables["evals"], tables["episodes"]
    assert sorted(set(evals["trial"])) == list(range(9))
    assert not evals.duplicated(["trial", "seed", "step"]).any()
    assert not episodes.duplicated(["trial", "seed", "episode"]).any()
    assert len(evals) == 9 * 2 * 3 and len(episodes) == 9 * 2 * 4
    assert evals["trial"].is_monotonic_increasing
    assert len(tables["trials"]) == 9
    files = sorted((tmp_path / "evals").iterdir())
    assert [p.name.split("-")[0] for p in files] == ["batch"] * 2 + ["part"] * 3  # one batch per session
    left = [sorted(set(pd.read_parquet(p)["trial"])) for p in files[2:]]
    assert sorted(left) == [[3], [4], [8]]  # the killed session's last, and the second's one after its batch


def test_a_kill_between_a_merge_and_the_removal_of_its_part_files_duplicates_nothing(tmp_path):
    study = optuna.create_study(direction="maximize")
    writer = ResultsWriter(tmp_path, study, merge_every=100, flush_every=3600)
    for number in range(4):
        finish(study, writer, number)
    kept = tmp_path / "kept"
    shutil.copytree(tmp_path / "evals", kept)
    writer.close()
    for path in kept.iterdir():  # the part files come back, as if the kill came before their removal
        shutil.copy(path, tmp_path / "evals" / path.name)
    evals = load(tmp_path)["evals"]
    assert len(evals) == 4 * 2 * 3 and not evals.duplicated(["trial", "seed", "step"]).any()
    only = load(tmp_path, tables=["evals"], trials=[2])["evals"]
    assert set(only["trial"]) == {2} and len(only) == 2 * 3


def test_finishing_a_trial_rewrites_no_earlier_file_and_the_trials_table_waits_for_its_debounce(tmp_path):
    study = optuna.create_study(direction="maximize")
    writer = ResultsWriter(tmp_path, study, merge_every=10, trials_every=3600, flush_every=0.05)
    flushes = thread_flushes(writer)
    wait_for(tmp_path / "trials.parquet")  # a session starts by writing the table as it is
    first_table = (tmp_path / "trials.parquet").stat().st_mtime_ns
    for number in range(10):
        finish(study, writer, number)
    (batch,) = (tmp_path / "evals").glob("batch-*.parquet")
    before = batch.stat().st_mtime_ns, batch.stat().st_ino
    for number in range(10, 25):
        finish(study, writer, number)
    flushed, table = len(flushes), tmp_path / "trials.parquet"
    # the writer's thread has had its chances to rewrite (or has rewritten the table already)
    wait_until(lambda: len(flushes) >= flushed + 2 or table.stat().st_mtime_ns != first_table,
               "two more flushes of the writer's thread")
    assert (batch.stat().st_mtime_ns, batch.stat().st_ino) == before
    assert table.stat().st_mtime_ns == first_table
    assert len(load(tmp_path)["trials"]) == 0
    writer.close()
    assert len(load(tmp_path)["trials"]) == 25
    assert len(load(tmp_path)["evals"]) == 25 * 2 * 3


def test_rows_reach_the_folder_within_a_flush_interval_with_no_call(tmp_path):
    writer = ResultsWriter(tmp_path, optuna.create_study(), flush_every=0.05)
    writer.add_trial(0, runs_of(0))
    writer.add_trial(1, runs_of(1))
    wait_until(lambda: len(load(tmp_path, tables=["evals"])["evals"]) == 2 * 2 * 3, "the writer's thread wrote the rows")
    assert len(load(tmp_path, tables=["episodes"])["episodes"]) == 2 * 2 * 4
    writer.close()


def test_a_writer_that_cannot_write_says_so_in_the_drivers_thread(tmp_path):
    writer = ResultsWriter(tmp_path, optuna.create_study(), flush_every=0.05)
    shutil.rmtree(tmp_path / "evals")
    (tmp_path / "evals").write_text("a file where the folder was")
    writer.add_trial(0, runs_of(0))
    wait_until(lambda: writer.error is not None, "the writer's thread raised")
    with pytest.raises(OSError):
        writer.check()


ADDED_THEN_KILLED = textwrap.dedent("""
    import os, sys, time, optuna
    from tests.store.test_writer import runs_of
    from sweeps.store.writer import ResultsWriter
    writer = ResultsWriter(sys.argv[1], optuna.create_study(), flush_every=3600)
    deadline = time.monotonic() + 60
    while not os.path.exists(os.path.join(sys.argv[1], "trials.parquet")):  # the writer's first flush
        assert time.monotonic() < deadline  # has taken its rows (none yet): the next is in an hour
        time.sleep(0.01)
    for number in range(3):
        writer.add_trial(number, runs_of(number))
    print("added", flush=True)
    time.sleep(60)
""")


def test_rows_handed_over_before_a_kill_are_written_by_the_next_session(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", ADDED_THEN_KILLED, str(tmp_path)], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "added"
    finally:
        proc.kill()
        proc.wait()
    assert load(tmp_path)["evals"].empty  # in no Parquet file yet: only in the killed session's log
    ResultsWriter(tmp_path, optuna.create_study()).close()
    tables = load(tmp_path)
    assert sorted(set(tables["evals"]["trial"])) == [0, 1, 2] and len(tables["evals"]) == 3 * 2 * 3
    assert len(tables["episodes"]) == 3 * 2 * 4 and set(tables["episodes"]["seed"]) == {0, 1}
    assert not list(tmp_path.glob(".rows-*"))


def test_a_live_sessions_rows_are_left_to_it(tmp_path):
    live = ResultsWriter(tmp_path, optuna.create_study(), flush_every=3600)
    wait_for(tmp_path / "trials.parquet")  # its first flush has taken its rows (none): the next is in an hour
    live.add_trial(0, runs_of(0))
    ResultsWriter(tmp_path, optuna.create_study()).close()  # a second session beside it
    assert load(tmp_path)["evals"].empty
    live.close()
    evals = load(tmp_path)["evals"]
    assert len(evals) == 2 * 3 and not evals.duplicated(["trial", "seed", "step"]).any()
    assert not list(tmp_path.glob(".rows-*"))


KILLED_WRITER = textwrap.dedent("""
    import sys, optuna
    from tests.store.test_writer import runs_of
    from sweeps.store.writer import ResultsWriter
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study()
    writer = ResultsWriter(sys.argv[1], study, merge_every=3, trials_every=0, flush_every=3600)
    writer.flush()  # a killed session's trials first, alone (its thread's first flush may come late)
    for number in range(int(sys.argv[2]), 10**6):  # each session its own trial numbers, as in a study
        study.enqueue_trial({})
        writer.changed()
        writer.add_trial(number, runs_of(number, seeds=range(4), evals=50, episodes=5_000))
        writer.flush()
""")


def kill_while_writing(run_dir: Path, first_trial: int, target: str, timeout: float = 60) -> str:
    """Start a writer session and SIGKILL it the moment a temporary file of `target` (a file
    name prefix) of its own is being written; the name of that file."""
    proc = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(run_dir), str(first_trial)], cwd=ROOT)
    folders = [run_dir, run_dir / "evals", run_dir / "episodes"]
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            for folder in folders:
                with contextlib.suppress(FileNotFoundError), os.scandir(folder) as entries:
                    for entry in entries:
                        if entry.name.startswith(f".{target}") and f".{proc.pid}." in entry.name:
                            os.kill(proc.pid, signal.SIGKILL)
                            return entry.name
        raise AssertionError(f"no {target} file was written within {timeout} s (exit {proc.poll()})")
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.timeout(300)
@pytest.mark.parametrize("target", ["part-", "batch-", "trials."])
def test_a_kill_during_a_write_leaves_every_file_readable_and_whole_trials(tmp_path, target):
    for session in range(3):  # killed sessions resumed in the same folder
        kill_while_writing(tmp_path, 1000 * session, target)
        for path in tmp_path.rglob("*.parquet"):
            pd.read_parquet(path)  # every file under its final name is complete
        tables = load(tmp_path)
        assert (tables["episodes"].groupby(["trial", "seed"]).size() == 5_000).all()
        assert (tables["evals"].groupby("trial").size() == 4 * 50).all()
        extra = set(tables["evals"]["trial"]) - set(tables["episodes"]["trial"])
        assert len(extra) <= 1  # the trial this kill caught between its two files (the next session writes it)
        assert not tables["evals"].duplicated(["trial", "seed", "step"]).any()
        assert not tables["episodes"].duplicated(["trial", "seed", "episode"]).any()
    ResultsWriter(tmp_path, optuna.create_study()).close()  # a session that ends well
    tables = load(tmp_path)
    assert set(tables["evals"]["trial"]) == set(tables["episodes"]["trial"])
    assert (tables["episodes"].groupby(["trial", "seed"]).size() == 5_000).all()
    assert not tables["evals"].duplicated(["trial", "seed", "step"]).any()
    assert not list(tmp_path.glob(".rows-*"))


def test_a_run_folder_of_the_single_file_format_loads_as_it_did():
    tables = load(LEGACY)
    for name in ("trials", "evals", "episodes"):
        expected = pd.read_parquet(LEGACY / f"{name}.parquet")
        if name != "trials":
            expected = expected.sort_values("trial", kind="stable").reset_index(drop=True)
        pd.testing.assert_frame_equal(tables[name], expected)
    assert len(tables["evals"]) == 3 * 2 * 3 and set(tables["evals"]["seed"]) == {0, 1}


def test_a_resumed_single_file_run_folder_adds_datasets_beside_it(tmp_path):
    shutil.copytree(LEGACY, tmp_path, dirs_exist_ok=True)
    writer = ResultsWriter(tmp_path, optuna.create_study())
    writer.add_trial(3, runs_of(3))
    writer.close()
    evals = load(tmp_path)["evals"]
    assert sorted(set(evals["trial"])) == [0, 1, 2, 3]
    assert len(evals) == 3 * 2 * 3 + 2 * 3 and not evals.duplicated(["trial", "seed", "step"]).any()


def test_an_unreadable_file_is_named_with_what_to_do(tmp_path):
    writer = ResultsWriter(tmp_path, optuna.create_study())
    writer.add_trial(0, runs_of(0))
    writer.close()
    (tmp_path / "evals" / "trial-7.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(ResultsError, match=r"evals/trial-7\.parquet: cannot read .* move the file aside"):
        load(tmp_path)
    assert len(load(tmp_path, tables=["episodes"])["episodes"]) == 2 * 4  # the other table still loads
