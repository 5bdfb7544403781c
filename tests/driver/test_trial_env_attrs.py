"""What a trial records about its env's runs: which loop trained it, and whether a resumed run
restored every env's state (`resumed_exactly`), as trials-table columns."""

import optuna
import pytest

from sweeps.driver.trial import LiveTrial
from sweeps.store.reader import trials_frame
from sweeps.study.spec import Objective

optuna.logging.set_verbosity(optuna.logging.WARNING)


def result(seed: int, **extra) -> dict:
    evals = [{"step": 100, "mean_return": 1.0, "final": True}]
    return {"seed": seed, "evals": evals, "episodes": [], "env_steps": 100, "wall_seconds": 1.0,
            "loop": "python", **extra}


@pytest.mark.parametrize("first, second, exactly", [
    ({"resumed_from_step": 50, "resumed_exactly": False}, {}, False),  # one seed's env restarted its episodes
    ({"resumed_from_step": 50, "resumed_exactly": True}, {}, True),
    ({}, {}, None),  # neither resumed
])
def test_a_trial_records_its_loop_and_whether_its_resumed_runs_were_exact(first, second, exactly):
    study = optuna.create_study(direction="maximize")
    trial = LiveTrial(study.ask(), [0, 1], [(0,), (1,)], None, {s: {"total_timesteps": 100} for s in (0, 1)}, 0)
    for unit, extra in (((0,), first), ((1,), second)):
        trial.settle(unit, {"status": "ok", "results": [result(unit[0], **extra)], "reason": None})
    assert trial.conclude(study, Objective(metric="final"))[0].name == "COMPLETE"
    assert study.trials[0].user_attrs["resumed_exactly"] is exactly
    assert trials_frame(study)[["loop", "resumed_exactly"]].to_dict("records") == [
        {"loop": "python", "resumed_exactly": exactly}]
