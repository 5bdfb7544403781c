"""The notebooks: committed without outputs, and executed top to bottom (nbclient, papermill-style
parameters) against run folders of the smoke study; every figure they show is a non-blank PNG."""

import base64
import json
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_notebooks_exist():
    assert {p.name for p in NOTEBOOKS} >= {"analyze_study.ipynb", "compare_studies.ipynb"}


@pytest.mark.timeout(30)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_without_outputs(path):
    """Clear them with: jupyter nbconvert --clear-output --inplace notebooks/*.ipynb"""
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    dirty = [i for i, cell in enumerate(nb.cells) if cell.cell_type == "code"
             and (cell.get("outputs") or cell.get("execution_count") is not None)]
    assert not dirty, f"{path.name}: code cells {dirty} have outputs or execution counts; clear them"
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{path.name}: needs exactly one cell tagged 'parameters' (papermill)"


def execute(name: str, parameters: dict, out_dir: Path) -> nbformat.NotebookNode:
    """Run notebooks/NAME with PARAMETERS injected after its 'parameters' cell, like papermill."""
    nb = nbformat.read(ROOT / "notebooks" / name, as_version=4)
    index = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    source = "# Parameters\n" + "".join(f"{k} = {v!r}\n" for k, v in parameters.items())
    injected = nbformat.v4.new_code_cell(source, metadata={"tags": ["injected-parameters"]})
    nb.cells.insert(index + 1, injected)
    client = NotebookClient(nb, timeout=120, kernel_name="python3", allow_errors=False,
                            resources={"metadata": {"path": str(ROOT)}})
    try:
        client.execute()
    finally:
        out_dir.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, out_dir / name)  # executed copy, for looking at a failure
    return nb


def shown_pngs(nb, out_dir: Path) -> list[Path]:
    paths = []
    for i, cell in enumerate(nb.cells):
        for j, output in enumerate(cell.get("outputs", [])):
            assert output.output_type != "error", output
            data = output.get("data", {})
            if "image/png" in data:
                path = out_dir / f"cell{i:02d}_{j}.png"
                path.write_bytes(base64.b64decode(data["image/png"]))
                paths.append(path)
    return paths


def text_of(nb) -> str:
    return json.dumps([c.get("outputs", []) for c in nb.cells])


@pytest.mark.timeout(240)
def test_analyze_study_runs_top_to_bottom(run_dir, tmp_path, not_blank):
    nb = execute("analyze_study.ipynb", {"run_dir": str(run_dir), "top": 3}, tmp_path)
    pngs = shown_pngs(nb, tmp_path)
    assert len(pngs) == 6, f"expected 6 figures, notebook showed {len(pngs)}"
    for png in pngs:
        not_blank(png)
    from sweeps.results import load
    from sweeps.study.ranking import best_trial

    best = int(best_trial(load(run_dir)["trials"])["number"])
    assert f"trial {best}, objective" in text_of(nb)  # the best config's header comment
    assert "learning_rate" in text_of(nb)


@pytest.mark.timeout(240)
def test_compare_studies_runs_top_to_bottom(run_dirs, tmp_path, not_blank):
    parameters = {"run_dirs": [str(run_dirs["tpe"]), str(run_dirs["random"])], "labels": ["tpe", "random"]}
    nb = execute("compare_studies.ipynb", parameters, tmp_path)
    pngs = shown_pngs(nb, tmp_path)
    assert len(pngs) == 3, f"expected 3 figures (best-so-far, 2 learning-curve panels), got {len(pngs)}"
    for png in pngs:
        not_blank(png)
    assert "tpe" in text_of(nb) and "random" in text_of(nb)
