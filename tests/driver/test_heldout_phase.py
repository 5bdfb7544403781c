"""The held-out phase on a real 2-worker LocalCluster, with the fake trainer in the trial
processes (whose returns depend on seed and config together, so tuning and held-out ranks
differ): the answer is the top-k config with the best held-out score, held-out seeds never meet
tuning seeds (across sessions and reruns), a failing held-out run fails alone with its reason,
bad options are refused before anything starts, and after a Ctrl-C a rerun trains only what is
missing, from the checkpoints the interrupted tasks kept."""

import logging
import os
import signal
import threading
import time

import pytest
import yaml
from distributed import Client, LocalCluster
from typer.testing import CliRunner

from sweeps.cli import app
from sweeps.driver.heldout import Run, shared_out
from sweeps.driver.session import open_study, run_heldout, run_sweep
from sweeps.results import load, trials_frame
from sweeps.study.heldout import FIGURES_ATTR, SEEDS_ATTR, SESSION_ATTR
from sweeps.study.loading import parse_spec
from sweeps.study.ranking import best_trial
from sweeps.study.spec import Heldout, SpecError
from tests.helpers import FAKE

pytestmark = pytest.mark.timeout(180)

# Fake returns end at 1000 * learning_rate + luck(seed, max_grad_norm) + seed: on tuning seeds 0, 1
# max_grad_norm 3.0 leads (luck +33.0 on average), then 4.0 (+21.9), 2.0 (+16.9); on held-out seeds
# 1000-1003 4.0 leads (+11.7), then 2.0 (+5.9) and 3.0 (-12.2).
PARAMS = [3.0, 4.0, 2.0, 5.0, 4.0, 1.0]  # trials 1 and 4 are the same config: they tie everywhere


@pytest.fixture(scope="module")
def address():
    with LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1", processes=True,
                      dashboard_address="127.0.0.1:0", silence_logs=logging.ERROR) as cluster, Client(cluster):
        yield cluster.scheduler_address


def make_spec(**changes):
    data = {
        "study": "fake",
        "env_id": "CartPole-v1",
        "trainer": {"total_timesteps": 600, "eval_freq": 200, "train_freq": 5},
        "space": {"max_grad_norm": {"type": "categorical", "choices": sorted(set(PARAMS))}},
        "objective": {"metric": "final"},
        "seeds": 2,
        "budget": {"n_trials": len(PARAMS)},
        "parallel": 2,
        "sampler": {"name": "random", "seed": 0},
        "pruner": {"name": "none"},
        "heldout": {"top_k": 3, "seeds": 4, "baseline": "defaults"},
    }
    return parse_spec({**data, **changes})


def sweep(spec, run_dir, address, said=None):
    return run_sweep(spec, run_dir, scheduler=address, entry=FAKE, echo=[].append if said is None else said.append)


def final_returns(table):
    """{config: {seed: its final evaluation's return}} of a held-out table."""
    last = table.sort_values("step").groupby(["config", "seed"]).tail(1)
    return {config: dict(zip(rows["seed"], rows["mean_return"])) for config, rows in last.groupby("config")}


def test_the_answer_is_the_top_k_config_with_the_best_held_out_score(address, tmp_path):
    spec = make_spec()
    study = open_study(spec, tmp_path, None)
    for value in PARAMS:
        study.enqueue_trial({"max_grad_norm": value})
    study, tally = sweep(spec, tmp_path, address)
    assert tally.completed == len(PARAMS)
    assert [t.params["max_grad_norm"] for t in study.trials] == PARAMS
    assert study.best_trial.number == 0  # Optuna's best: the tuning winner

    held = study.user_attrs[SEEDS_ATTR]
    assert held == [1000, 1001, 1002, 1003] and not set(held) & {0, 1}
    table = load(tmp_path)["heldout"]
    finals = final_returns(table)
    assert set(finals) == {"trial 0", "trial 1", "trial 4", "baseline"}  # the top 3 by tuning, and the defaults
    assert all(sorted(per_seed) == held for per_seed in finals.values())
    assert len(table) == 4 * 4 * 3  # four configs, four seeds, three evaluations each: nothing twice

    # the answer, computed here from the tables: of the top 3 by tuning value (ties: lower number),
    # the best mean final return on the held-out seeds (ties: lower number)
    by_tuning = sorted(study.trials, key=lambda t: (-t.value, t.number))[:3]
    scores = {t.number: sum(finals[f"trial {t.number}"].values()) / 4 for t in by_tuning}
    expected = min(scores, key=lambda n: (-scores[n], n))
    assert expected == 1 and scores[1] == scores[4]  # 1 and 4 tie; 0 won the tuning
    trials = trials_frame(study)
    assert int(best_trial(trials)["number"]) == expected
    assert trials.set_index("number").loc[1, "heldout_value"] == pytest.approx(scores[1])
    assert study.user_attrs[FIGURES_ATTR + "trial 1"]["vs_baseline"] == pytest.approx(
        scores[1] - sum(finals["baseline"].values()) / 4)
    (cost,) = [v for k, v in study.user_attrs.items() if k.startswith(SESSION_ATTR)]
    assert cost["runs"] == 16 and cost["failed"] == 0 and cost["env_steps"] == 16 * 600


def test_held_out_seeds_stay_apart_across_sessions_and_reruns_and_a_failing_run_fails_alone(address, tmp_path):
    baseline = tmp_path / "diverges.yaml"
    baseline.write_text(yaml.safe_dump({"gamma": 0.5}))  # the fake trainer diverges with gamma 0.5
    spec = make_spec(seeds=[0, 1000], budget={"n_trials": 3}, sampler={"name": "grid", "seed": 0},
                     heldout={"top_k": 1, "seeds": 2, "baseline": str(baseline)})
    said = []
    study, _ = sweep(spec, tmp_path / "run", address, said)
    run_dir = tmp_path / "run"
    assert study.user_attrs[SEEDS_ATTR] == [1001, 1002]  # 1000 is a tuning seed here
    reason = study.user_attrs[FIGURES_ATTR + "baseline"]["fail_reason"]
    assert reason.startswith("seed 1001: diverged") and "(and 1 more seeds)" in reason
    assert any("held-out baseline: 2 of 2 runs FAILED" in line for line in said)
    first = load(run_dir)["heldout"]
    assert set(first["config"]) == {f"trial {best_trial(trials_frame(study))['number']}"}  # the phase went on

    # a later session asks for more seeds and configs: new seeds are appended, none reused
    wider = spec.model_copy(update={"heldout": Heldout(top_k=2, seeds=3, baseline=str(baseline))})
    run_heldout(wider, study, run_dir, scheduler=address, entry=FAKE, echo=said.append)
    assert study.user_attrs[SEEDS_ATTR] == [1001, 1002, 1003]
    table = load(run_dir)["heldout"]
    assert table.groupby(["config", "seed"]).size().eq(3).all()  # every run once
    assert sorted(set(table["seed"])) == [1001, 1002, 1003] and len(set(table["config"])) == 2
    costs = sorted((v for k, v in study.user_attrs.items() if k.startswith(SESSION_ATTR)), key=lambda c: c["runs"])
    assert [(c["runs"], c["failed"]) for c in costs] == [(2, 2), (4, 3)]  # 1 new seed + 3 for the new config

    # bad options: a one-line error, exit 2, before anything starts or is stored
    runner, sessions = CliRunner(), len(study.user_attrs)
    for args, message in [(["--seeds", "1"], "--seeds 1: Input should be greater than or equal to 2"),
                          (["--baseline", "defaults"], ("heldout.baseline = 'defaults': trains another config than "
                                                       "this study's held-out baseline"))]:
        refused = runner.invoke(app, ["heldout", str(run_dir), "--entry", FAKE, *args])
        assert refused.exit_code == 2 and message in refused.output, refused.output
    assert len(study.user_attrs) == sessions and "--seeds" not in (run_dir / "study.yaml").read_text()

    again = len(study.trials)
    with pytest.raises(SpecError, match=r"\[1002\] are held-out seeds of this study"):
        sweep(make_spec(seeds=[0, 1002], budget={"n_trials": 4}), run_dir, address)
    assert len(open_study(spec, run_dir, None).trials) == again  # refused before anything ran


def test_ctrl_c_keeps_what_finished_and_the_checkpoints_a_rerun_resumes(address, tmp_path):
    # one tuning trial, then its held-out tasks (a seed on each slot): three evaluations of 0.6 s each
    spec = make_spec(trainer={"total_timesteps": 600, "eval_freq": 200, "train_freq": 600}, seeds=1,
                     budget={"n_trials": 1}, heldout={"top_k": 1, "seeds": 2, "baseline": None})
    study, _ = run_sweep(spec.model_copy(update={"heldout": None}), tmp_path, scheduler=address, entry=FAKE,
                         echo=lambda line: None)

    def interrupt_once_checkpointed():
        deadline = time.monotonic() + 60
        while not list(tmp_path.glob("checkpoints/heldout/*/*/state.json")) and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGINT)

    watcher = threading.Thread(target=interrupt_once_checkpointed)
    watcher.start()
    said = []
    with pytest.raises(KeyboardInterrupt):
        run_heldout(spec, study, tmp_path, scheduler=address, entry=FAKE, echo=said.append)
    watcher.join()
    assert any("held-out phase interrupted" in line for line in said)
    assert load(tmp_path)["heldout"].empty and len(list(tmp_path.glob("checkpoints/heldout/trial-0/seed-100*"))) == 2

    run_heldout(spec, study, tmp_path, scheduler=address, entry=FAKE, echo=said.append)
    table = load(tmp_path)["heldout"]
    assert table.groupby("seed").size().to_dict() == {1000: 3, 1001: 3}
    assert study.user_attrs[FIGURES_ATTR + "trial 0"]["seeds"] == 2
    assert not list(tmp_path.glob("checkpoints/heldout"))  # gone once its runs ended


def test_a_costly_config_is_shared_out_over_the_slots_and_the_baseline_is_not():
    # 5 seeds at 14.4 s and 5 at 2.2 s on 2 slots: an even share is 41.5 s, so the costly
    # config trains as 3 + 2 seeds beside the cheap one (43.2 s at most on a slot, not 72 s).
    seeds = (1000, 1001, 1002, 1003, 1004)
    runs = [Run("trial 1", 1, {}, seeds), Run("trial 3", 3, {}, seeds)]
    per_seed = {1: 14.4, 3: 2.2}
    seconds = lambda run: per_seed[run.trial] * len(run.seeds)
    assert [(r.config, r.seeds) for r in shared_out(runs, seconds, 2)] == [
        ("trial 1", (1000, 1001, 1002)), ("trial 1", (1003, 1004)), ("trial 3", seeds)]
    assert shared_out(runs, seconds, 1) == runs
    baseline = [Run("baseline", None, {}, seeds)]  # its cost is unknown: one task
    assert shared_out(baseline + runs, lambda r: float("inf") if r.trial is None else seconds(r), 2)[0] == baseline[0]
