"""The layering rules of docs/architecture.md, checked in fresh interpreters and on the import
graph of the source."""

import ast
import pathlib
import subprocess
import sys

import pytest

import sweeps

ROOT = pathlib.Path(sweeps.__file__).parent
MODULES = sorted(  # not `__main__` modules: importing one runs it
    ".".join(("sweeps", *p.relative_to(ROOT).with_suffix("").parts)).removesuffix(".__init__")
    for p in ROOT.rglob("*.py") if p.name != "__main__.py"
)


def loaded_modules(statement: str) -> set[str]:
    code = f"{statement}\nimport sys\nprint(' '.join(sorted(sys.modules)))"
    completed = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr[-2000:]
    return set(completed.stdout.split())


def roots(modules: set[str]) -> set[str]:
    return {name.split(".")[0] for name in modules}


def imports_of(module: str) -> set[str]:
    """The `sweeps.*` modules `module`'s source imports, at any level of the file (functions
    included), but for those under `if TYPE_CHECKING:` (annotations only)."""
    path = ROOT.joinpath(*module.split(".")[1:])
    path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            node.body = []
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("sweeps"):
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names if f"{node.module}.{alias.name}" in MODULES)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("sweeps"))
    return {name for name in found if name in MODULES and name != module}


def test_the_package_has_its_parts():
    assert {"sweeps.cli", "sweeps.driver.loop", "sweeps.worker.task", "sweeps.worker.child",
            "sweeps.store.journal", "sweeps.study.spec", "sweeps.reporting.report"} <= set(MODULES)


def test_config_and_package_import_without_tensorflow():
    assert "tensorflow" not in roots(loaded_modules("import dqn_tf, dqn_tf.config, dqn_tf.result"))


def test_trainer_never_imports_dask_or_optuna():
    modules = roots(loaded_modules("import dqn_tf.training"))
    assert "tensorflow" in modules
    assert not modules & {"dask", "distributed", "optuna"}


def test_sweeps_modules_import_without_tensorflow():
    assert "tensorflow" not in roots(loaded_modules("\n".join(f"import {name}" for name in MODULES)))


@pytest.mark.parametrize("command", ["sweeps.reporting.status", "sweeps.reporting.report", "sweeps.results"])
def test_reading_a_run_folder_loads_no_dask(command):
    """`status`, `report` and notebooks read files and the storage: no cluster client."""
    assert not roots(loaded_modules(f"import {command}")) & {"distributed", "dask"}


@pytest.mark.parametrize(("package", "forbidden"), [
    ("sweeps.worker", ("sweeps.driver", "sweeps.reporting", "sweeps.store", "sweeps.cli")),
    ("sweeps.reporting", ("sweeps.driver", "sweeps.worker", "sweeps.cli")),
    ("sweeps.store", ("sweeps.driver", "sweeps.worker", "sweeps.reporting", "sweeps.cli")),
    ("sweeps.study", ("sweeps.driver", "sweeps.worker", "sweeps.store", "sweeps.reporting", "sweeps.cli")),
])
def test_layers_import_only_downwards(package, forbidden):
    wrong = {module: sorted(name for name in imports_of(module) if name.startswith(forbidden))
             for module in MODULES if module.startswith(package)}
    assert not {module: names for module, names in wrong.items() if names}


def test_no_import_cycles():
    graph = {module: imports_of(module) for module in MODULES}
    cycles = []

    def visit(module, path):
        for name in graph[module]:
            if name in path:
                cycles.append(path[path.index(name):] + [name])
            elif name not in done:
                visit(name, path + [name])
        done.add(module)

    done: set[str] = set()
    for module in MODULES:
        if module not in done:
            visit(module, [module])
    assert not cycles, cycles[:5]
