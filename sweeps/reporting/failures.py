"""Why trials failed, grouped by reason (the first line of `fail_reason`), as `dqn-sweep status`
lists them and the report shows them."""

from __future__ import annotations

import dataclasses

import pandas as pd

from sweeps.reporting.best import missing


@dataclasses.dataclass(frozen=True)
class FailureGroup:
    reason: str  # the first line, which names the failure
    numbers: list[int]  # the trials that failed so, ascending
    example: str  # the whole reason of the first of them (tracebacks, stderr tails)


def failure_groups(trials: pd.DataFrame) -> list[FailureGroup]:
    """The FAIL trials of a trials table by reason, in the order the reasons first appear."""
    if trials.empty or "state" not in trials:
        return []
    failed = trials[trials["state"] == "FAIL"]
    if failed.empty:
        return []
    full = (failed["fail_reason"] if "fail_reason" in failed else pd.Series(None, index=failed.index)).map(
        lambda r: "unknown" if missing(r) else str(r).strip())
    first = full.map(lambda r: r.splitlines()[0] if r else "unknown")
    groups = []
    for reason, group in failed.groupby(first, sort=False):
        numbers = sorted(int(n) for n in group["number"])
        example = full[group.index[group["number"] == numbers[0]][0]]
        groups.append(FailureGroup(reason, numbers, example))
    return groups


def listed(numbers: list[int], limit: int) -> str:
    """Trial numbers as text, the first `limit` of them."""
    return ", ".join(map(str, numbers[:limit])) + (", ..." if len(numbers) > limit else "")
