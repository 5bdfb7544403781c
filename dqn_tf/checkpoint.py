"""Checkpoints: everything needed to resume a run exactly, as arrays and JSON only.

Nothing read from a checkpoint can execute code: `arrays-<step>.npz` holds weights, optimizer
slots and replay (read with `allow_pickle=False`) and `state.json` holds counters, RNG states,
env states and curves. Each file is written under a temporary name and renamed into place;
`state.json` goes last and names its arrays file, so a reader never sees a half-written pair.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

STATE_FILE = "state.json"


def _atomic_write(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as handle:
        write(handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def save(folder: Path, step: int, arrays: dict[str, np.ndarray], state: dict[str, Any]) -> int:
    """Write one checkpoint; returns its size in bytes."""
    folder.mkdir(parents=True, exist_ok=True)
    arrays_name = f"arrays-{step}.npz"
    _atomic_write(folder / arrays_name, lambda f: np.savez(f, **arrays))
    text = json.dumps({**state, "arrays": arrays_name}).encode()
    _atomic_write(folder / STATE_FILE, lambda f: f.write(text))
    for old in folder.glob("arrays-*.npz"):
        if old.name != arrays_name:
            old.unlink()
    return (folder / arrays_name).stat().st_size + len(text)


def load(folder: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]] | None:
    """The latest checkpoint in `folder`, or None when there is none."""
    state_path = folder / STATE_FILE
    if not state_path.exists():
        return None
    state = json.loads(state_path.read_text())
    with np.load(folder / Path(state["arrays"]).name, allow_pickle=False) as data:
        arrays = {name: data[name] for name in data.files}
    return arrays, state
