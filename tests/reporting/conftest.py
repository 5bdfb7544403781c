"""Run folders for the reporting tests, made once per session by the real CLI on the smoke study:
a real LocalCluster (2 workers) and the real trainer in child processes.

Two studies on the same environment, as a user would compare them: TPE (3 trials) and random
search (2 trials). Together about 40-50 s on 2 cores.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.helpers import SMOKE, dqn_sweep, study_file


def make_run(folder: Path, study: Path, n_trials: int) -> Path:
    dqn_sweep("run", str(study), "--output", str(folder), "--n-trials", str(n_trials), "--parallel", "2",
              timeout=150, check=True)
    trials = pd.read_parquet(folder / "trials.parquet")
    reasons = trials.loc[trials["state"] == "FAIL", "fail_reason"].tolist()
    assert (trials["state"] == "COMPLETE").any(), f"no COMPLETE trial in {folder}; failures: {reasons}"
    return folder


@pytest.fixture(scope="session")
def run_dirs(tmp_path_factory) -> dict[str, Path]:
    """{"tpe": run folder, "random": run folder} of the smoke study."""
    base = tmp_path_factory.mktemp("runs")
    random_file = study_file(base, name="smoke_random.yaml", study="smoke_random",
                             sampler={"name": "random", "seed": 1, "options": {}})
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
