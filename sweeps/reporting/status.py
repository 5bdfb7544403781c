"""What `dqn-sweep status` says about a run folder: trials by state, the answer (the best trial,
how it was chosen, its held-out figures: `sweeps.reporting.answer`), why trials failed.

It reads the run folder's `trials.parquet` when that was written after the journal's last
change (a session ended since, so the table is exact; replaying a 10,000-trial journal takes
seconds), else the caller builds the table from the study (`sweeps.results.trials_frame`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from sweeps.reporting import answer
from sweeps.reporting.best import missing, plain
from sweeps.reporting.failures import failure_groups, listed
from sweeps.store.reader import load
from sweeps.store.run_folder import load_spec_copy, read_run_info
from sweeps.store.storage import journal_path
from sweeps.study.spec import StudySpec

FAILED_LISTED = 10  # trial numbers listed per failure reason


def fresh_table(run_dir: Path) -> tuple[str, pd.DataFrame] | None:
    """(study name, trials table) when the run folder's table is as new as its journal, else None."""
    table, journal = Path(run_dir) / "trials.parquet", journal_path(run_dir)
    if not table.exists() or not journal.exists():
        return None
    name, url = read_run_info(run_dir)
    if url is not None or table.stat().st_mtime_ns < journal.stat().st_mtime_ns:
        return None
    return name, load(run_dir, tables=["trials"])["trials"]


def summary(study_name: str, trials: pd.DataFrame, heldout: pd.DataFrame | None = None,
            spec: StudySpec | None = None) -> Iterator[str]:
    """The lines of `dqn-sweep status` for a trials table (and the held-out table, figures by the
    study's objective)."""
    if trials.empty:
        yield f"study {study_name}: 0 trials"
        return
    counts = trials["state"].value_counts()
    yield f"study {study_name}: {len(trials)} trials: " + ", ".join(
        f"{n} {s.lower()}" for s, n in sorted(counts.items()))
    found = answer.find_answer(trials, heldout if heldout is not None else pd.DataFrame(columns=["config"]), spec)
    if found is not None:
        best = found.trial
        params = {c.removeprefix("params_"): plain(best[c]) for c in trials.columns
                  if c.startswith("params_") and not missing(best[c])}
        yield f"best: trial {int(best['number'])} value {best['value']:.3f} params {json.dumps(params)}"
        yield from answer.lines(found)
    for group in failure_groups(trials):
        if len(group.numbers) == 1:
            yield f"failed: trial {group.numbers[0]}: {group.reason}"
        else:
            yield f"failed: {len(group.numbers)} trials ({listed(group.numbers, FAILED_LISTED)}): {group.reason}"


def heldout_of(run_dir: Path) -> tuple[pd.DataFrame | None, StudySpec | None]:
    """(held-out table, the study as run) of a run folder, for its answer; (None, None) when
    it has none."""
    try:
        return load(run_dir, tables=["heldout"])["heldout"], load_spec_copy(run_dir)
    except (OSError, ValueError):
        return None, None


def answer_lines(run_dir: Path, spec: StudySpec) -> Iterator[str]:
    """The answer of a run folder a session just wrote (its trials table is exact): the `best:`
    line and how it was chosen, with its figures."""
    tables = load(run_dir, tables=["trials", "heldout"])
    for line in summary(spec.study, tables["trials"], tables["heldout"], spec):
        if not line.startswith(("study ", "failed: ")):
            yield line
