"""The best trial as a trainer config: what `dqn-sweep best` writes and the report shows, ready
for `dqn-sweep train --config FILE` (which trial is best: `sweeps.study.ranking`)."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
import yaml

from sweeps.reporting.figures import PARAM_PREFIX, param_names
from sweeps.study.ranking import best_trial
from sweeps.study.space import params_to_config, with_params
from sweeps.study.spec import StudySpec


def best_config(trials: pd.DataFrame, spec: StudySpec | None = None) -> dict[str, Any] | None:
    """{study, trial, value, config} of the best trial of a trials table; None when no trial is
    COMPLETE. With the spec, `config` is the full trainer config (base fields, the trial's
    params, its first seed); without it, just the trial's params."""
    best = best_trial(trials)
    if best is None:
        return None
    params = {name: plain(best[PARAM_PREFIX + name]) for name in param_names(trials)
              if not missing(best[PARAM_PREFIX + name])}
    if spec is None:
        return {"study": None, "trial": int(best["number"]), "value": float(best["value"]), "config": params}
    config = {**with_params(spec.base_config(), params_to_config(params, spec)), "seed": spec.seed_list[0]}
    return {"study": spec.study, "trial": int(best["number"]), "value": float(best["value"]), "config": config}


def best_config_yaml(best: dict[str, Any] | None) -> str:
    """`best_config` as the YAML file `dqn-sweep best` writes (a comment when there is none)."""
    if best is None:
        return "# no COMPLETE trial yet\n"
    header = f"# dqn-sweep best: study {best['study']}, trial {best['trial']}, objective {best['value']:.4f}\n"
    return header + yaml.safe_dump(best, sort_keys=False)


def plain(value: Any) -> Any:
    """numpy scalars as Python ones (for YAML and JSON)."""
    return value.item() if hasattr(value, "item") else value


def missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))
