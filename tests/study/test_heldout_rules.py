"""The held-out phase's rules: which seeds are held out (never a tuning seed, appended never
reused), what the baseline trains, the `heldout:` section, and the one best-trial decision
preferring held-out scores where they exist."""

import re

import pandas as pd
import pytest
import yaml

from sweeps.study.heldout import (
    FIRST_SEED,
    baseline_config,
    check_tuning_seeds,
    heldout_seeds,
    resolve_baseline,
)
from sweeps.study.loading import load_spec, parse_spec
from sweeps.study.ranking import best_trial, how_chosen, ranked, top_k
from sweeps.study.spec import SpecError

STUDY = {"study": "h", "env_id": "CartPole-v1", "trainer": {"total_timesteps": 3000, "learning_rate": 1e-3},
         "space": {"gamma": {"type": "float", "low": 0.9, "high": 0.99}}}


def test_heldout_seeds_skip_every_tuning_seed_and_extend_without_reuse():
    assert heldout_seeds({0, 1}, [], 3) == [FIRST_SEED, FIRST_SEED + 1, FIRST_SEED + 2]
    tuned = {0, 1000, 1002}  # a study may tune on seeds up there: they are skipped
    first = heldout_seeds(tuned, [], 3)
    assert first == [1001, 1003, 1004]
    more = heldout_seeds(tuned | {1005}, first, 5)  # a later session tuned on 1005 too
    assert more[:3] == first and more[3:] == [1006, 1007]
    assert heldout_seeds(tuned, more, 2) == more  # never fewer than recorded
    assert not set(more) & (tuned | {1005}) and len(set(more)) == len(more)


def test_a_study_never_tunes_on_a_held_out_seed():
    check_tuning_seeds(parse_spec({**STUDY, "seeds": 3}), [1000, 1001])
    with pytest.raises(ValueError, match=r"seeds = \[0, 1001\]: \[1001\] are held-out seeds of this study"):
        check_tuning_seeds(parse_spec({**STUDY, "seeds": [0, 1001]}), [1000, 1001])


def test_the_heldout_section(tmp_path):
    assert parse_spec(STUDY).heldout.model_dump() == {"top_k": 2, "seeds": 5, "baseline": None}
    assert parse_spec({**STUDY, "heldout": False}).heldout is None
    assert parse_spec({**STUDY, "heldout": True}).heldout.top_k == 2
    assert parse_spec({**STUDY, "heldout": {"top_k": 1, "baseline": "defaults"}}).heldout.baseline == "defaults"
    for bad, message in [({"seeds": 1}, "heldout.seeds = 1: Input should be greater than or equal to 2"),
                         ({"topk": 2}, "heldout.topk: unknown key (did you mean 'top_k'?)"),
                         ("yes", "heldout = 'yes': allowed: false (no held-out phase), true, or a mapping")]:
        with pytest.raises(SpecError, match=re.escape(message)):
            parse_spec({**STUDY, "heldout": bad})
    # a baseline file is named relative to the study file, and checked before anything starts
    (tmp_path / "zoo.yaml").write_text(yaml.safe_dump({"config": {"learning_rate": 5e-4, "seed": 3}}))
    study = tmp_path / "study.yaml"
    study.write_text(yaml.safe_dump({**STUDY, "heldout": {"baseline": "zoo.yaml"}}))
    spec = load_spec(study)
    assert spec.heldout.baseline == str(tmp_path / "zoo.yaml")
    config = baseline_config(spec, spec.heldout.baseline)
    assert config["learning_rate"] == 5e-4 and config["total_timesteps"] == 3000 and "seed" not in config
    (tmp_path / "zoo.yaml").write_text(yaml.safe_dump({"learning_rate": 5.0}))
    with pytest.raises(SpecError, match=r"heldout.baseline = 'zoo.yaml': baseline file .*zoo.yaml: .*learning_rate = 5.0"):
        load_spec(study)


def test_the_baseline_defaults_and_one_baseline_per_study():
    spec = parse_spec(STUDY)
    assert baseline_config(spec, "defaults") == {"total_timesteps": 3000, "learning_rate": 1e-3, "env_id": "CartPole-v1"}
    recorded = resolve_baseline(spec, "defaults", None)
    assert resolve_baseline(spec, "defaults", recorded) == recorded and resolve_baseline(spec, None, recorded) == recorded
    other = parse_spec({**STUDY, "trainer": {"total_timesteps": 3000, "learning_rate": 3e-3}})
    with pytest.raises(ValueError, match="differ in learning_rate"):
        resolve_baseline(other, "defaults", recorded)


TRIALS = pd.DataFrame({
    "number": [0, 1, 2, 3, 4, 5],
    "state": ["COMPLETE", "COMPLETE", "COMPLETE", "COMPLETE", "PRUNED", "COMPLETE"],
    "value": [9.0, 8.0, 8.0, 7.0, None, 1.0],
    "heldout_value": [5.0, 6.0, 6.0, None, None, None],
    "heldout_seeds": [10, 10, 10, None, None, None],
})


def test_held_out_scores_decide_where_they_exist_ties_to_the_earlier_trial():
    assert top_k(TRIALS, 3) == [0, 1, 2]  # the phase retrains by tuning objective
    assert int(best_trial(TRIALS)["number"]) == 1  # 1 and 2 tie on held-out: the earlier; not the tuning winner 0
    assert ranked(TRIALS)["number"].tolist()[:4] == [1, 2, 0, 3]
    assert ranked(TRIALS, heldout=False)["number"].tolist()[:4] == [0, 1, 2, 3]
    assert "held-out score of the 3 configs" in how_chosen(TRIALS)
    assert int(best_trial(TRIALS.drop(columns=["heldout_value"]))["number"]) == 0
    assert how_chosen(TRIALS.drop(columns=["heldout_value"])).startswith("the best tuning objective")
    # a phase cut short: a config measured on fewer seeds ranks below those measured on all
    short = TRIALS.assign(heldout_seeds=[10, 4, 10, None, None, None])
    assert int(best_trial(short)["number"]) == 2
