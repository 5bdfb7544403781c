"""Layering rules from DESIGN.md, checked in fresh interpreters."""

import subprocess
import sys


def loaded_modules(statement: str) -> set[str]:
    code = f"{statement}\nimport sys\nprint(' '.join(sorted(sys.modules)))"
    completed = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr[-2000:]
    return {name.split(".")[0] for name in completed.stdout.split()}


def test_config_and_package_import_without_tensorflow():
    assert "tensorflow" not in loaded_modules("import dqn_tf, dqn_tf.config, dqn_tf.result")


def test_trainer_never_imports_dask_or_optuna():
    modules = loaded_modules("import dqn_tf.training")
    assert "tensorflow" in modules
    assert not modules & {"dask", "distributed", "optuna"}


def test_sweeps_modules_import_without_tensorflow():
    import pathlib

    import sweeps

    names = sorted(p.stem for p in pathlib.Path(sweeps.__file__).parent.glob("*.py") if p.stem != "__init__")
    assert {"spec", "search", "driver", "tasks", "child", "cli"} <= set(names)  # the glob found the package
    statement = "\n".join(f"import sweeps.{name}" for name in names)
    assert "tensorflow" not in loaded_modules(statement)
