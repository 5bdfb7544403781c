"""Every way a study file can be wrong fails before anything starts, naming file, field, value."""

from pathlib import Path

import pytest
import yaml

from sweeps.study.loading import load_spec, parse_spec
from sweeps.study.space import grid_size
from sweeps.study.spec import SpecError

pytestmark = pytest.mark.timeout(60)
STUDIES = Path(__file__).resolve().parents[2] / "studies"


def base() -> dict:
    return {
        "study": "t",
        "env_id": "CartPole-v1",
        "trainer": {"total_timesteps": 1000, "eval_freq": 100},
        "space": {"learning_rate": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True}},
    }


def with_(path: str, value) -> dict:
    data = base()
    node = data
    *parents, leaf = path.split(".")
    for key in parents:
        node = node.setdefault(key, {})
    node[leaf] = value
    return data


@pytest.mark.parametrize("name", sorted(p.name for p in STUDIES.glob("*.yaml")))
def test_shipped_studies_are_valid(name):
    spec = load_spec(STUDIES / name)
    assert spec.study == name.removesuffix(".yaml")


@pytest.mark.parametrize(
    "data, expected",
    [
        (with_("stduy", "x"), ["stduy: unknown key", "did you mean 'study'"]),
        (with_("sampler.nmae", "tpe"), ["sampler.nmae: unknown key", "did you mean 'name'"]),
        (with_("space.learning_rate.hihg", 1), ["space.learning_rate.hihg: unknown key", "did you mean 'high'"]),
        (with_("space.learning_rate", {"type": "uniform", "low": 0, "high": 1}), ["space.learning_rate", "'float', 'int', 'categorical'"]),
        (with_("space.learning_rate", {"type": "float", "low": 2, "high": 1}), ["space.learning_rate", "low = 2.0 must be <= high = 1.0"]),
        (with_("space.learning_rate", {"type": "float", "low": 0, "high": 1, "log": True}), ["log scale needs low > 0"]),
        (with_("space.learning_rate", {"type": "float", "low": 0.1, "high": 1, "log": True, "step": 0.1}), ["log and step"]),
        (with_("space.batch_size", {"type": "int", "low": 8, "high": 64, "step": 0}), ["space.batch_size.step = 0", "greater than or equal to 1"]),
        (with_("space.net_arch", {"type": "categorical", "choices": []}), ["space.net_arch.choices = []", "at least 1"]),
        (with_("objective.metric", "best"), ["objective.metric = 'best'", "'final', 'last_k' or 'auc'"]),
        (with_("objective.seed_aggregate", "median"), ["objective.seed_aggregate = 'median'", "'mean' or 'iqm'"]),
        (with_("budget", {"n_trials": None}), ["budget", "set n_trials, timeout or both"]),
        (with_("budget.n_trials", 0), ["budget.n_trials = 0", "greater than or equal to 1"]),
        (with_("parallel", 0), ["parallel = 0"]),
        (with_("pack", 0), ["pack = 0", "greater than or equal to 1"]),
        (with_("pack", 2) | {"population": False}, ["pack = 2", "population: true, or pack: 1"]),
        (with_("sampler.name", "bayes"), ["sampler.name = 'bayes'", "'tpe'"]),
        (with_("pruner.name", "early"), ["pruner.name = 'early'", "'median'"]),
        (with_("resources.cpu_threads", 0), ["cpu_threads = 0", "'auto'"]),
        (with_("resources.gpus", -1), ["resources.gpus = -1"]),
        (with_("resources.env", ["WANDB_MODE", "9LIVES"]), ["resources.env = ['WANDB_MODE', '9LIVES']",
                                                          "'9LIVES' is not an environment variable name", "letters"]),
        (with_("resources.env", ["DQN_SWEEP_STORAGE"]), ["resources.env = ['DQN_SWEEP_STORAGE']", "storage URL",
                                                         "allowed: any other variable name"]),
        (with_("resources.env", ["CUDA_VISIBLE_DEVICES"]), ["resources.env = ['CUDA_VISIBLE_DEVICES']",
                                                            "resources.gpus", "allowed: any other"]),
        (with_("resources.env", "WANDB_MODE"), ["resources.env = 'WANDB_MODE'", "valid list"]),
        (with_("study", "my study!"), ["study = 'my study!'", "pattern"]),
        (with_("trainer.gama", 0.9), ["trainer:", "gama: unknown field", "did you mean 'gamma'"]),
        (with_("trainer.gamma", 2.0), ["trainer:", "gamma = 2.0", "less than or equal to 1"]),
        (with_("env_id", "CartPol-v1"), ["env_id = 'CartPol-v1'", "did you mean CartPole-v1"]),
        (with_("trainer.exploration_final_eps", 0.9) | {"trainer": {"exploration_initial_eps": 0.5, "exploration_final_eps": 0.9}},
         ["exploration_final_eps = 0.9 must be <= exploration_initial_eps = 0.5"]),
        (with_("space.learnig_rate", {"type": "float", "low": 0.1, "high": 1}), ["space.learnig_rate: not a trainer field", "did you mean 'learning_rate'"]),
        (with_("space.seed", {"type": "int", "low": 0, "high": 9}), ["space.seed", "seeds:"]),
        (with_("space.batch_size", {"type": "int", "low": 0, "high": 64}), ["space: with batch_size=0", "batch_size = 0"]),
        (with_("space.net_arch", {"type": "categorical", "choices": [[64], [0]]}), ["space: with net_arch=[0]", "positive"]),
        (with_("sampler.options", {"n_startup_trails": 3}), ["sampler.options.n_startup_trails", "did you mean 'n_startup_trials'"]),
        (with_("pruner.options", {"n_warmup_step": 3}), ["pruner.options.n_warmup_step", "did you mean 'n_warmup_steps'"]),
        (with_("pruner.name", "percentile"), ["pruner.options.percentile: required"]),
        (with_("pruner", {"name": "percentile", "options": {"percentile": 150}}), ["pruner.options", "percentile"]),
        (with_("sampler.name", "grid"), ["space.learning_rate: the grid sampler needs a finite grid"]),
        (with_("sampler.name", "gp"), ["sampler.name = 'gp'", "pip install torch"]),
        (with_("resources.gpus", 1) | {"trainer": {"devices": "cpu"}}, ["trainer.devices = 'cpu'", "resources.gpus"]),
    ],
)
def test_error_names_file_field_value_and_allowed(data, expected):
    with pytest.raises(SpecError) as caught:
        parse_spec(data, source="studies/x.yaml")
    message = str(caught.value)
    assert message.startswith("studies/x.yaml: ")
    for part in expected:
        assert part in message


def test_file_errors_name_the_file(tmp_path):
    with pytest.raises(SpecError, match=r"missing.yaml: cannot read"):
        load_spec(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("study: [unclosed")
    with pytest.raises(SpecError, match=r"bad.yaml: not valid YAML"):
        load_spec(bad)
    bad.write_text("- a list\n")
    with pytest.raises(SpecError, match=r"bad.yaml: expected a mapping"):
        load_spec(bad)


def test_overrides_use_dotted_paths_and_are_validated(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(base()))
    assert load_spec(path, {"budget.n_trials": 7, "parallel": 3}).budget.n_trials == 7
    with pytest.raises(SpecError, match="budget.n_trials = 0"):
        load_spec(path, {"budget.n_trials": 0})


def test_seeds_and_base_config():
    spec = parse_spec(with_("seeds", 3) | {"trainer": {"seed": 10, "eval_freq": 100}})
    assert spec.seed_list == [10, 11, 12]
    assert spec.base_config()["env_id"] == "CartPole-v1"
    assert parse_spec(with_("seeds", [5, 7])).seed_list == [5, 7]
    gpu = parse_spec(with_("resources.gpus", 2))
    assert gpu.base_config()["devices"] == "gpu:2"
    assert parse_spec(base()).resources.env == []
    assert parse_spec(with_("resources.env", ["WANDB_MODE", "MUJOCO_GL"])).resources.env == ["WANDB_MODE", "MUJOCO_GL"]


def test_grid_size_counts_every_point():
    spec = parse_spec(
        base()
        | {"sampler": {"name": "grid"}, "space": {
            "batch_size": {"type": "int", "low": 32, "high": 128, "step": 32},
            "gamma": {"type": "float", "low": 0.9, "high": 0.99, "step": 0.03},
            "net_arch": {"type": "categorical", "choices": [[32], [64]]},
        }}
    )
    assert grid_size(spec) == 4 * 4 * 2


def test_trials_need_evaluations():
    with pytest.raises(SpecError, match="trainer.eval_freq = 0"):
        parse_spec(with_("trainer.eval_freq", 0))
