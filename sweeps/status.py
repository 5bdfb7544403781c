"""What `dqn-sweep status` says about a run folder: trials by state, the best, why trials failed.

It reads the run folder's `trials.parquet` when that was written after the journal's last
change (a session ended since, so the table is exact; replaying a 10,000-trial journal takes
seconds), else the caller builds the table from the study (`results.trials_frame`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from sweeps.results import load
from sweeps.session import read_run_info
from sweeps.storage import journal_path

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


def summary(study_name: str, trials: pd.DataFrame) -> Iterator[str]:
    """The lines of `dqn-sweep status` for a trials table."""
    if trials.empty:
        yield f"study {study_name}: 0 trials"
        return
    counts = trials["state"].value_counts()
    yield f"study {study_name}: {len(trials)} trials: " + ", ".join(
        f"{n} {s.lower()}" for s, n in sorted(counts.items()))
    complete = trials[(trials["state"] == "COMPLETE") & trials["value"].notna()]
    if len(complete):
        best = complete.loc[complete["value"].idxmax()]
        params = {c.removeprefix("params_"): plain(best[c]) for c in trials.columns
                  if c.startswith("params_") and not missing(best[c])}
        yield f"best: trial {int(best['number'])} value {best['value']:.3f} params {json.dumps(params)}"
    failed = trials[trials["state"] == "FAIL"]
    if failed.empty:
        return
    reasons = failed["fail_reason"].map(lambda r: "unknown" if missing(r) else str(r).splitlines()[0])
    for reason, group in failed.groupby(reasons, sort=False):
        numbers = sorted(int(n) for n in group["number"])
        if len(numbers) == 1:
            yield f"failed: trial {numbers[0]}: {reason}"
        else:
            listed = ", ".join(map(str, numbers[:FAILED_LISTED])) + (", ..." if len(numbers) > FAILED_LISTED else "")
            yield f"failed: {len(numbers)} trials ({listed}): {reason}"


def plain(value: Any) -> Any:
    """numpy scalars as Python ones (for JSON)."""
    return value.item() if hasattr(value, "item") else value


def missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))
