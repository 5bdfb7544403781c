"""Run folders for the reporting tests, made once per session by the real CLI on the smoke study:
a real LocalCluster (2 workers) and the real trainer in child processes.

Two studies on the same environment, as a user would compare them: TPE (3 trials) and random
search (2 trials). Together about 40-50 s on 2 cores.
"""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "studies" / "smoke.yaml"


def cli(*args: str, timeout: float = 150) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "sweeps.cli", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, check=False)
    assert done.returncode == 0, f"dqn-sweep {' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def make_run(folder: Path, study_file: Path, n_trials: int) -> Path:
    cli("run", str(study_file), "--output", str(folder), "--n-trials", str(n_trials), "--parallel", "2")
    trials = pd.read_parquet(folder / "trials.parquet")
    reasons = trials.loc[trials["state"] == "FAIL", "fail_reason"].tolist()
    assert (trials["state"] == "COMPLETE").any(), f"no COMPLETE trial in {folder}; failures: {reasons}"
    return folder


@pytest.fixture(scope="session")
def run_dirs(tmp_path_factory) -> dict[str, Path]:
    """{"tpe": run folder, "random": run folder} of the smoke study."""
    base = tmp_path_factory.mktemp("runs")
    study = yaml.safe_load(SMOKE.read_text())
    study.update(study="smoke_random", sampler={"name": "random", "seed": 1})
    random_file = base / "smoke_random.yaml"
    random_file.write_text(yaml.safe_dump(study, sort_keys=False))
    return {
        "tpe": make_run(base / "smoke_tpe", SMOKE, 3),
        "random": make_run(base / "smoke_random", random_file, 2),
    }


@pytest.fixture(scope="session")
def run_dir(run_dirs) -> Path:
    return run_dirs["tpe"]


@pytest.fixture(scope="session")
def not_blank():
    """`not_blank(png_bytes_or_path, min_colors=16)`: assert a PNG has drawn content."""
    return assert_not_blank


def assert_not_blank(png: bytes | Path, min_colors: int = 16, min_drawn: float = 0.01) -> tuple[int, int]:
    """A PNG that decodes and has content: pixels vary, several colours, not (almost) all white.

    `min_drawn`: the fraction of pixels that must be non-white (a note-only figure has ~0.3%).
    """
    from PIL import Image

    data = png.read_bytes() if isinstance(png, Path) else png
    image = Image.open(io.BytesIO(data)).convert("RGB")
    pixels = np.asarray(image).astype(np.uint32)
    assert image.width >= 100 and image.height >= 100, f"tiny image {image.size}"
    assert pixels.std() > 1, f"flat image (pixel std {pixels.std():.2f})"
    packed = (pixels[..., 0] << 16) | (pixels[..., 1] << 8) | pixels[..., 2]
    colors = len(np.unique(packed))
    assert colors >= min_colors, f"only {colors} distinct colours"
    drawn = (pixels < 250).any(axis=2).mean()
    assert drawn > min_drawn, f"only {100 * drawn:.2f}% of the pixels are not white"
    return image.size
