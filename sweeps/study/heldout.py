"""The held-out phase's rules (docs/heldout.md), as plain functions: which seeds are held out,
what the baseline trains, and how a held-out run is named in the tables.

Tuning seeds choose a config, held-out seeds measure it (Eimer et al., ICML 2023): the held-out
seeds are the lowest seeds from FIRST_SEED up that no trial of the study trained on and that are
not held out already, and they are appended to the study's record, never replaced, so a later
phase or a rerun extends the same list. Every config of the phase (and the baseline) trains on
the same held-out seeds, so their scores differ by the config only.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sweeps.study.files import read_mapping, trainer_fields

if TYPE_CHECKING:
    from sweeps.study.spec import StudySpec

FIRST_SEED = 1000  # ARLBench tunes on seeds 0-9 and tests on 100 and up; tuning seeds sit below
BASELINE = "baseline"  # the `config` of the baseline's rows in the held-out table
DEFAULTS = "defaults"
# What the phase records on the study (user attrs): its seeds, the trials it retrained, the
# baseline ({"name", "config"}), each config's figures (`sweeps.study.scores`), each session's cost.
SEEDS_ATTR, TRIALS_ATTR, BASELINE_ATTR = "heldout:seeds", "heldout:trials", "heldout:baseline"
FIGURES_ATTR, SESSION_ATTR = "heldout:figures:", "heldout:session:"  # + a config (`label`), + a session id


def heldout_seeds(tuned_on: Iterable[int], recorded: Sequence[int], count: int) -> list[int]:
    """The study's held-out seeds: `recorded` (in order, never dropped) and, while fewer than
    `count`, the next seeds from FIRST_SEED up that are neither tuned on nor recorded."""
    taken = set(tuned_on) | set(recorded)
    seeds, candidate = list(recorded), FIRST_SEED
    while len(seeds) < count:
        if candidate not in taken:
            seeds.append(candidate)
        candidate += 1
    return seeds


def label(trial: int) -> str:
    """The `config` of a trial's rows in the held-out table."""
    return f"trial {trial}"


def baseline_config(spec: StudySpec, baseline: str) -> dict[str, Any]:
    """The trainer config the baseline trains (seed aside): `defaults`, the study's `trainer:`
    fields with the trainer's defaults for every searched field; else a YAML file of trainer
    fields over those (a `dqn-sweep best` file: its `config:`). Raises ValueError naming the
    file and what is wrong."""
    base = spec.base_config()
    if baseline == DEFAULTS:
        return base
    path = Path(baseline)
    data = trainer_fields(read_mapping(path, f"baseline file {path}", "trainer fields"))
    from dqn_tf.config import ConfigError, parse_config

    config = {**base, **data}
    config.pop("seed", None)
    try:
        parse_config(config)
    except ConfigError as error:
        raise ValueError(f"baseline file {path}: {error}") from None
    return config


def resolve_baseline(spec: StudySpec, name: str | None, recorded: dict[str, Any] | None) -> dict[str, Any] | None:
    """{"name", "config"} of the baseline a phase trains: `name`'s (or, when None, the one the
    study recorded), or None. Raises ValueError when it is not the baseline the study's held-out
    scores already compare to: there is one per study."""
    if name is None:
        return recorded
    chosen = {"name": name, "config": json.loads(json.dumps(baseline_config(spec, name)))}
    if recorded is not None and recorded["config"] != chosen["config"]:
        fields = sorted(key for key in {*recorded["config"], *chosen["config"]}
                        if recorded["config"].get(key) != chosen["config"].get(key))
        raise ValueError(
            f"heldout.baseline = {name!r}: trains another config than this study's held-out baseline "
            f"({recorded['name']!r}; they differ in {', '.join(fields)}); a study's held-out scores compare "
            f"to one baseline: name that one, or none")
    return chosen


def check_tuning_seeds(spec: StudySpec, heldout: Sequence[int]) -> None:
    """Raise ValueError when the study would tune on one of its held-out seeds."""
    overlap = sorted(set(spec.seed_list) & set(heldout))
    if overlap:
        raise ValueError(f"seeds = {spec.seeds!r}: {overlap} are held-out seeds of this study (docs/heldout.md); "
                         f"tuning seeds must stay apart from them: pick seeds below {FIRST_SEED} or not yet held out")
