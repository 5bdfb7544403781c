"""`status`, `best`, the report and analyze_study.ipynb name the same answer on a sweep with ties
(tuning and held-out) and held-out scores, where the answer is not the tuning winner; the report
and the notebook show the held-out table and figures.

The run folder: `dqn-sweep run` with the fake trainer on a real LocalCluster. Its returns end at
1000 * learning_rate + luck(seed, max_grad_norm) + seed, and `batch_size` changes nothing: each
max_grad_norm is two trials that tie everywhere. On tuning seeds 3.0 leads, on held-out seeds 4.0.
"""

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from sweeps.cli import app
from sweeps.reporting.report import write_report
from sweeps.results import load
from tests.helpers import FAKE
from tests.reporting.test_notebooks import execute, shown_pngs, text_of

ROOT = Path(__file__).resolve().parents[2]

STUDY = {
    "study": "ties", "env_id": "CartPole-v1",
    "trainer": {"total_timesteps": 600, "eval_freq": 200, "train_freq": 5},
    "space": {"max_grad_norm": {"type": "categorical", "choices": [3.0, 4.0, 2.0]},
              "batch_size": {"type": "categorical", "choices": [32, 64]}},
    "objective": {"metric": "final"}, "seeds": 2, "budget": {"n_trials": 6}, "parallel": 2,
    "sampler": {"name": "grid", "seed": 0}, "pruner": {"name": "none"},
    "heldout": {"top_k": 4, "seeds": 4, "baseline": "defaults"},
}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("ties")
    (folder / "study.yaml").write_text(yaml.safe_dump(STUDY))
    done = subprocess.run([str(Path(sys.executable).parent / "dqn-sweep"), "run", str(folder / "study.yaml"),
                           "--output", str(folder / "run"), "--entry", FAKE],
                          cwd=ROOT, capture_output=True, text=True, timeout=150, check=False)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return folder / "run"


def expected_answer(run_dir: Path) -> int:
    """The answer from the tables alone: of the top 4 trials by tuning value (ties: lower number),
    the best mean final return on held-out seeds (ties: lower number)."""
    tables = load(run_dir)
    trials, heldout = tables["trials"], tables["heldout"]
    assert trials["value"].duplicated().sum() == 3  # three pairs of tied trials
    top = sorted(zip(-trials["value"], trials["number"]))[:4]
    last = heldout[heldout["step"] == 600]
    scores = {n: last.loc[last["config"] == f"trial {n}", "mean_return"].mean() for _, n in top}
    assert len(set(scores.values())) == 2  # the top 4 are two tied pairs on held-out seeds too
    answer = min(scores, key=lambda n: (-scores[n], n))
    assert answer != top[0][1]  # not the tuning winner
    return int(answer)


def test_status_best_and_report_name_the_same_answer(run_dir, tmp_path):
    answer = expected_answer(run_dir)
    runner = CliRunner()
    status = runner.invoke(app, ["status", str(run_dir)])
    assert status.exit_code == 0, status.output
    assert f"best: trial {answer} value" in status.output
    assert "chosen by the best held-out score of the 4 configs" in status.output
    assert re.search(r"held-out \(4 seeds\): mean [\d.]+ \[95% CI [\d.]+, [\d.]+\]", status.output)
    assert re.search(r"baseline \(defaults\) \(4 seeds\): mean .*; trial \d+ - baseline: [+-][\d.]+ \[95% CI", status.output)

    best = runner.invoke(app, ["best", str(run_dir), "--output", str(tmp_path / "best.yaml")])
    assert best.exit_code == 0, best.output
    chosen = yaml.safe_load((tmp_path / "best.yaml").read_text())
    assert chosen["trial"] == answer and chosen["heldout"]["seeds"] == [1000, 1001, 1002, 1003]
    assert chosen["heldout"]["mean_ci95"][0] <= chosen["heldout"]["mean"] <= chosen["heldout"]["mean_ci95"][1]
    assert chosen["heldout"]["baseline"]["name"] == "defaults" and chosen["config"]["max_grad_norm"] == 4.0

    page = write_report(run_dir, tmp_path / "report.html").read_text()
    assert f"<strong id='best-trial'>{answer}</strong>" in page
    section = page[page.index("<section id='heldout'>"):page.index("<section id='figures'>")]
    assert "1000, 1001, 1002, 1003" in section and section.count("<img") == 2
    assert section.count("<tr") == 1 + 5  # four retrained trials and the baseline
    assert page.count("<img") == 8


@pytest.mark.timeout(240)
def test_analyze_study_shows_the_held_out_answer(run_dir, tmp_path, not_blank):
    answer = expected_answer(run_dir)
    nb = execute("analyze_study.ipynb", {"run_dir": str(run_dir), "top": 3}, tmp_path)
    pngs = shown_pngs(nb, tmp_path)
    assert len(pngs) == 8, f"expected 8 figures (6 and the 2 held-out ones), notebook showed {len(pngs)}"
    for png in pngs:
        not_blank(png)
    assert f"trial {answer}, objective" in text_of(nb)  # the answer's config header
