"""A sweep's answer: the config, how it was chosen, and its numbers (tuning objective, held-out
score with its intervals, the baseline's and the difference to it), as `dqn-sweep run` ends,
`status` and `best` print and the report shows.

Which trial is `sweeps.study.ranking`'s decision; its held-out figures are computed here from the
run folder's held-out table (`sweeps.study.scores`), the table the study's attrs were computed
from, so that the decision and the figures shown beside it come from the same rows.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import pandas as pd

from sweeps.study import scores
from sweeps.study.heldout import BASELINE, label
from sweeps.study.ranking import best_trial, how_chosen
from sweeps.study.spec import StudySpec

PREFIX = "heldout_"


@dataclasses.dataclass(frozen=True)
class Answer:
    """The chosen trial's row, how it was chosen, and the held-out figures (one row per config,
    `sweeps.study.scores.FIGURES`; empty without a held-out phase)."""

    trial: pd.Series
    how: str
    figures: pd.DataFrame
    baseline_name: str | None = None

    @property
    def number(self) -> int:
        return int(self.trial["number"])

    def heldout(self, config: str | None = None) -> dict[str, Any] | None:
        """The figures of `config` (default: the chosen trial's), or None."""
        rows = self.figures[self.figures["config"] == (config or label(self.number))]
        return None if rows.empty else rows.iloc[0].to_dict()

    @property
    def baseline(self) -> dict[str, Any] | None:
        return self.heldout(BASELINE)


def with_figures(trials: pd.DataFrame, figures: pd.DataFrame) -> pd.DataFrame:
    """The trials table with its `heldout_*` columns set from `figures` (the held-out table's):
    the trials it holds get theirs, the others none."""
    if figures.empty or trials.empty:
        return trials
    scored = figures[figures["trial"].notna()]
    by_trial = scored.set_index(scored["trial"].astype(int))
    numbers = trials["number"].astype(int)
    out = trials.copy()
    for column in scores.FIGURES[2:]:
        out[PREFIX + column] = numbers.map(by_trial[column]).to_numpy()
    return out


def find_answer(trials: pd.DataFrame, heldout: pd.DataFrame, spec: StudySpec | None) -> Answer | None:
    """The answer of a trials table and held-out table (figures by the study's objective; without
    the spec, the trials table's own held-out columns decide and no figures are shown). None when
    no trial is COMPLETE."""
    figures = scores.figures(heldout, spec.objective) if spec is not None else pd.DataFrame(columns=scores.FIGURES)
    trials = with_figures(trials, figures)
    best = best_trial(trials)
    if best is None:
        return None
    name = spec.heldout.baseline if spec is not None and spec.heldout is not None else None
    return Answer(best, how_chosen(trials), figures, name)


def estimate(figures: dict[str, Any], stat: str) -> str:
    """'312.9 [95% CI 280.1, 341.0]' for stat 'mean' or 'iqm' of a config's figures."""
    value, low, high = (figures.get(stat + end) for end in ("", "_low", "_high"))
    if low is None or high is None or math.isnan(low) or math.isnan(high):
        return f"{value:.1f} (one seed: no interval)"
    return f"{value:.1f} [95% CI {low:.1f}, {high:.1f}]"


def lines(answer: Answer) -> list[str]:
    """The answer in words: the chosen trial's held-out figures and the baseline's (indented,
    under a `best: trial N ...` line)."""
    out = [f"  chosen by {answer.how}"]
    mine, base = answer.heldout(), answer.baseline
    tuned = float(answer.trial["value"])
    if mine is None:
        out.append(f"  tuning objective {tuned:.2f}, on the seeds it was chosen on: optimistic; "
                   "`dqn-sweep heldout RUN_DIR` measures it on held-out seeds")
        return out
    gap = tuned - float(mine["value"])
    out.append(f"  held-out ({int(mine['seeds'])} seeds): mean {estimate(mine, 'mean')}, IQM {estimate(mine, 'iqm')}; "
               f"tuning objective {tuned:.2f} ({gap:+.1f} over its held-out score)")
    if base is not None:
        name = f" ({answer.baseline_name})" if answer.baseline_name else ""
        diff = "" if mine.get("vs_baseline") is None or pd.isna(mine["vs_baseline"]) else \
            f"; trial {answer.number} - baseline: {mine['vs_baseline']:+.1f}" + (
                "" if pd.isna(mine["vs_baseline_low"]) else
                f" [95% CI {mine['vs_baseline_low']:+.1f}, {mine['vs_baseline_high']:+.1f}]")
        out.append(f"  baseline{name} ({int(base['seeds'])} seeds): mean {estimate(base, 'mean')}, "
                   f"IQM {estimate(base, 'iqm')}{diff}")
    return out
