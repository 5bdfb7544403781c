"""The answer as a trainer config with its figures: what `dqn-sweep best` writes and the report
shows, ready for `dqn-sweep train --config FILE` (which trial: `sweeps.study.ranking`; its
figures: `sweeps.reporting.answer`)."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
import yaml

from sweeps.reporting.answer import find_answer
from sweeps.reporting.figures import PARAM_PREFIX, param_names
from sweeps.study.space import params_to_config, with_params
from sweeps.study.spec import StudySpec


def best_config(trials: pd.DataFrame, spec: StudySpec | None = None,
                heldout: pd.DataFrame | None = None) -> dict[str, Any] | None:
    """{study, trial, value, chosen_by, heldout, config} of the answer of a trials table (and its
    held-out table: `sweeps.reporting.answer`); None when no trial is COMPLETE. `value` is the
    tuning objective; `heldout` the held-out figures, on which seeds, and the baseline's (absent
    without held-out runs). With the spec, `config` is the full trainer config (base fields, the
    trial's params, its first seed); without it, just the trial's params."""
    table = heldout if heldout is not None else pd.DataFrame(columns=["config", "seed"])
    found = find_answer(trials, table, spec)
    if found is None:
        return None
    best = found.trial
    params = {name: plain(best[PARAM_PREFIX + name]) for name in param_names(trials)
              if not missing(best[PARAM_PREFIX + name])}
    out: dict[str, Any] = {"study": None if spec is None else spec.study, "trial": found.number,
                           "value": float(best["value"]), "chosen_by": found.how}
    mine = found.heldout()
    if mine is not None:
        out["heldout"] = figures_of(mine, table)
        if found.baseline is not None:
            out["heldout"]["baseline"] = {"name": found.baseline_name, **figures_of(found.baseline, table)}
            out["heldout"].update(vs_baseline=number(mine["vs_baseline"]),
                                  vs_baseline_ci95=[number(mine["vs_baseline_low"]), number(mine["vs_baseline_high"])])
    out["config"] = params if spec is None else \
        {**with_params(spec.base_config(), params_to_config(params, spec)), "seed": spec.seed_list[0]}
    return out


def figures_of(figures: dict[str, Any], table: pd.DataFrame) -> dict[str, Any]:
    """One config's held-out figures for the YAML: on which seeds, the objective's aggregate
    (`value`), mean and IQM with their 95% intervals."""
    seeds = sorted(int(s) for s in table.loc[table["config"] == figures["config"], "seed"].unique())
    return {"seeds": seeds, "value": number(figures["value"]),
            "mean": number(figures["mean"]), "mean_ci95": [number(figures["mean_low"]), number(figures["mean_high"])],
            "iqm": number(figures["iqm"]), "iqm_ci95": [number(figures["iqm_low"]), number(figures["iqm_high"])]}


def best_config_yaml(best: dict[str, Any] | None) -> str:
    """`best_config` as the YAML file `dqn-sweep best` writes (a comment when there is none)."""
    if best is None:
        return "# no COMPLETE trial yet\n"
    header = (f"# dqn-sweep best: study {best['study']}, trial {best['trial']}, objective {best['value']:.4f} "
              f"(on its tuning seeds)\n# chosen by {best['chosen_by']}")
    if "heldout" in best:
        header += f"; held-out mean {best['heldout']['mean']} on {len(best['heldout']['seeds'])} seeds"
    return header + "\n" + yaml.safe_dump(best, sort_keys=False)


def number(value: Any) -> float | None:
    """A figure for YAML: a float rounded to 4 places, None when missing."""
    return None if missing(value) else round(float(value), 4)


def plain(value: Any) -> Any:
    """numpy scalars as Python ones (for YAML and JSON)."""
    return value.item() if hasattr(value, "item") else value


def missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))
