"""The user's own env through the command line, with the real trainer on tiny budgets.

Commands run from an empty working directory. The example package is on PYTHONPATH (as a
user's would be) but its id is known only when the command names its module (`module:EnvId`,
`--env-package`, `env_packages`).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sweeps.results import load

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "custom_env"
BIN = Path(sys.executable).parent
pytestmark = pytest.mark.timeout(240)
TINY = ["--set", "total_timesteps=600", "--set", "learning_starts=100", "--set", "train_freq=4",
        "--set", "gradient_steps=1", "--set", "eval_freq=300", "--set", "n_eval_episodes=2", "--set", "net_arch=[16]",
        "--set", "buffer_size=600"]


def cli(cwd: Path, *args: str, code: int = 0, timeout: float = 200) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(EXAMPLE)])}
    done = subprocess.run([str(BIN / "dqn-sweep"), *args], cwd=cwd, env=env, check=False, capture_output=True,
                          text=True, timeout=timeout)
    assert done.returncode == code, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def study(tmp_path: Path, name: str = "study.yaml", **changes) -> Path:
    data = yaml.safe_load((EXAMPLE / "study.yaml").read_text())
    data["trainer"].update({"total_timesteps": 1200, "eval_freq": 400, "buffer_size": 1200, "n_eval_episodes": 2})
    data.update({"seeds": 1, "parallel": 1, "budget": {"n_trials": 2}, "heldout": False})
    data.update(changes)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def test_train_names_the_env_s_module_by_module_env_id_or_env_package(tmp_path):
    kwargs = ["--set", "env_kwargs={max_steps: 7}"]
    cli(tmp_path, "train", "--env", "corridor_env:Corridor-v0", *TINY, *kwargs, "--output", "a")
    cli(tmp_path, "train", "--env", "Corridor-v0", "--env-package", "corridor_env", *TINY, *kwargs, "--output", "b")
    first, second = (json.loads((tmp_path / out / "result.json").read_text()) for out in ("a", "b"))
    assert first["loop"] == "python" and max(e["length"] for e in first["episodes"]) == 7
    assert second["config"]["env_packages"] == ["corridor_env"]
    assert second["evals"] == first["evals"] and second["episodes"] == first["episodes"]  # the same env
    unnamed = cli(tmp_path, "train", "--env", "Corridor-v0", *TINY, "--output", "c", code=2)
    assert unnamed.stderr.count("\n") == 1 and "env_id = 'Corridor-v0': not a registered" in unnamed.stderr
    assert not (tmp_path / "c").exists()


@pytest.mark.parametrize("change, env, args, field", [
    ({"env_packages": ["no_such_pkg"]}, {}, [], "env_packages = ['no_such_pkg']: cannot import 'no_such_pkg'"),
    ({"env_id": "Corridorr-v0"}, {}, [], "env_id = 'Corridorr-v0': not a registered gymnasium environment"),
    ({"env_id": "Pendulum-v1"}, {"env_kwargs": {}, "env_wrappers": []}, [],
     "env_id = 'Pendulum-v1': DQN needs a Discrete action space"),
    ({}, {"env_wrappers": ["no_such_pkg:Wrap"]}, [], "env_wrappers[0] = 'no_such_pkg:Wrap': cannot import"),
    ({}, {"env_kwargs": {"width": 3}}, [], "env_kwargs.width: not a keyword of Corridor-v0"),
    ({}, {}, ["--upload", "no/such/folder"], "--upload"),
], ids=["module", "id", "box-actions", "wrapper", "kwargs", "upload"])
def test_bad_env_input_exits_2_with_one_line_and_leaves_the_run_folder_alone(tmp_path, change, env, args, field):
    trainer = {**yaml.safe_load((EXAMPLE / "study.yaml").read_text())["trainer"], **env}
    path = study(tmp_path, trainer=trainer, **change)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "journal.log").write_text("kept\n")
    done = cli(tmp_path, "run", str(path), "--output", str(run_dir), *args, code=2, timeout=60)
    assert done.stderr.count("\n") == 1 and field in done.stderr, done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert [p.name for p in run_dir.iterdir()] == ["journal.log"] and (run_dir / "journal.log").read_text() == "kept\n"


def test_a_sweep_of_the_example_then_best_and_train_reproduce_a_trial_s_curves(tmp_path):
    """`--env-package` names the package; the searched env keyword shows in the params and in
    the episodes; `best` -> `train` gives the best trial's curves again, kwargs and wrappers included."""
    path = study(tmp_path, env_packages=[], sampler={"name": "grid", "seed": 0},
                 space={"env_kwargs.max_steps": {"type": "categorical", "choices": [9, 14]}})
    unnamed = cli(tmp_path, "run", str(path), "--output", "run", code=2, timeout=60)
    assert "env_packages or as 'module:EnvId'" in unnamed.stderr
    cli(tmp_path, "run", str(path), "--output", "run", "--env-package", "corridor_env")
    tables = load(tmp_path / "run")
    trials = tables["trials"]
    assert list(trials["state"]) == ["COMPLETE"] * 2 and set(trials["loop"]) == {"python"}
    longest = tables["episodes"].groupby("trial")["length"].max()
    assert {int(t["params_env_kwargs.max_steps"]): longest[t["number"]] for _, t in trials.iterrows()} == {9: 9, 14: 14}

    cli(tmp_path, "best", "run", "--output", "best.yaml")
    best = yaml.safe_load((tmp_path / "best.yaml").read_text())
    assert best["config"]["env_wrappers"] == [{"corridor_env.wrappers:ScaleReward": {"scale": 10.0}}]
    cli(tmp_path, "train", "--config", "best.yaml", "--output", "again")
    again = json.loads((tmp_path / "again" / "result.json").read_text())
    evals = tables["evals"][tables["evals"]["trial"] == best["trial"]].sort_values("step")
    assert [e["mean_return"] for e in again["evals"]] == evals["mean_return"].tolist()
    episodes = tables["episodes"][tables["episodes"]["trial"] == best["trial"]].sort_values("episode")
    assert [e["return"] for e in again["episodes"]] == episodes["return"].tolist()
    assert max(e["length"] for e in again["episodes"]) == best["config"]["env_kwargs"]["max_steps"]


def test_an_env_that_raises_fails_its_trial_with_its_message_and_the_sweep_goes_on(tmp_path):
    # The random sampler with seed 0 draws fail_at 0, 300, 0: the second trial's env raises at its
    # 300th step; the third trial starts after that failure and completes.
    path = study(tmp_path, study="faulty", env_id="tests.custom_envs:Faulty-v0", env_packages=[],
                 trainer={"total_timesteps": 600, "learning_starts": 100, "eval_freq": 300, "n_eval_episodes": 2,
                          "net_arch": [16], "train_freq": 4, "gradient_steps": 1, "buffer_size": 600},
                 space={"env_kwargs.fail_at": {"type": "categorical", "choices": [300, 0]}},
                 sampler={"name": "random", "seed": 0}, budget={"n_trials": 2, "max_failed": 2})
    cli(tmp_path, "run", str(path), "--output", "run")
    trials = load(tmp_path / "run")["trials"]
    assert list(zip(trials["params_env_kwargs.fail_at"], trials["state"])) == [
        (0, "COMPLETE"), (300, "FAIL"), (0, "COMPLETE")]
    assert trials["fail_reason"][1] == "seed 0: RuntimeError: Faulty broke at env step 300"
