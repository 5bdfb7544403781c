"""The held-out table (`heldout/`): written like the evaluations, read by `sweeps.results.load`,
a held-out run's rows (a config's seed) from one file only, sessions adding seeds to a config,
and the baseline's rows (no trial) surviving a killed session."""

import shutil

import optuna
import pandas as pd

from sweeps.results import load
from sweeps.store.writer import ResultsWriter, RowsLog, heldout_rows

optuna.logging.set_verbosity(optuna.logging.WARNING)


def evals(seed: int, steps=(100, 200)) -> list[dict]:
    return [{"step": step, "mean_return": float(seed + step), "std_return": 1.0, "min_return": 0.0,
             "max_return": 9.0, "env_steps": step + 1, "final": step == steps[-1], "episodes": 3}
            for step in steps]


def runs(*seeds: int) -> dict[int, list[dict]]:
    return {seed: evals(seed) for seed in seeds}


def test_sessions_add_seeds_to_a_config_and_the_baseline_has_no_trial(tmp_path):
    study = optuna.create_study()
    first = ResultsWriter(tmp_path, study, flush_every=3600)
    first.add_heldout("trial 3", 3, runs(1000, 1001))
    first.add_heldout("baseline", None, runs(1000))
    first.flush()
    first.add_heldout("baseline", None, runs(1001))  # a second part file: merged into a batch at the end
    first.close()
    second = ResultsWriter(tmp_path, study, flush_every=3600)
    second.add_heldout("trial 3", 3, runs(1002))  # a later session extends the config to a new seed
    second.close()

    table = load(tmp_path)["heldout"]
    assert list(table.columns[:4]) == ["config", "trial", "seed", "step"]
    counts = table.groupby(["config", "seed"]).size().to_dict()
    assert counts == {("baseline", 1000): 2, ("baseline", 1001): 2, ("trial 3", 1000): 2,
                      ("trial 3", 1001): 2, ("trial 3", 1002): 2}
    assert table.loc[table["config"] == "baseline", "trial"].isna().all()
    assert (table.loc[table["config"] == "trial 3", "trial"] == 3).all()
    assert table.loc[(table["config"] == "trial 3") & (table["seed"] == 1002), "mean_return"].tolist() == [1102.0, 1202.0]
    assert load(tmp_path, tables=["heldout"], trials=[3])["heldout"]["config"].unique().tolist() == ["trial 3"]
    assert load(tmp_path)["evals"].empty  # held-out rows are not tuning evaluations


def test_a_kill_between_a_merge_and_the_removal_of_its_parts_duplicates_no_run(tmp_path):
    writer = ResultsWriter(tmp_path, optuna.create_study(), flush_every=3600)
    writer.add_heldout("trial 1", 1, runs(1000, 1001))
    writer.flush()
    writer.add_heldout("trial 1", 1, runs(1002))
    writer.flush()
    parts = sorted((tmp_path / "heldout").glob("part-*.parquet"))
    assert len(parts) == 2
    # as if a merge had written its batch (of the first part only) and the kill came before the parts went
    shutil.copy(parts[0], tmp_path / "heldout" / parts[0].name.replace("part-", "batch-"))
    table = load(tmp_path)["heldout"]
    assert table.groupby(["config", "seed"]).size().to_dict() == {("trial 1", s): 2 for s in (1000, 1001, 1002)}
    writer.close()


def test_a_killed_sessions_baseline_rows_are_written_by_the_next_session(tmp_path):
    log = RowsLog(tmp_path, "killed")
    log.add(None, heldout_rows("baseline", runs(1000, 1001)))
    log.file.close()
    log.held.close()  # the session died: its lock is free, its log stays
    assert load(tmp_path)["heldout"].empty
    ResultsWriter(tmp_path, optuna.create_study()).close()
    table = load(tmp_path)["heldout"]
    assert sorted(set(table["seed"])) == [1000, 1001] and (table["config"] == "baseline").all()
    assert table["trial"].isna().all() and len(table) == 4
    assert not list(tmp_path.glob(".rows-*"))
    pd.testing.assert_frame_equal(load(tmp_path)["heldout"], table)
