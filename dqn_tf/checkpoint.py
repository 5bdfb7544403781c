"""Checkpoints: everything needed to resume a run exactly, written so a kill leaves a valid one.

A checkpoint is `arrays.npz` (weights, optimizer slots, replay) plus `state.pkl` (counters,
RNG state, envs, curves). Each file is written under a temporary name and renamed into place;
`state.pkl` goes last and names the step of its `arrays-<step>.npz`, so a reader never sees a
half-written pair.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np

STATE_FILE = "state.pkl"


def _atomic_write(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as handle:
        write(handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def save(folder: Path, step: int, arrays: dict[str, np.ndarray], state: dict[str, Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    arrays_name = f"arrays-{step}.npz"
    _atomic_write(folder / arrays_name, lambda f: np.savez(f, **arrays))
    _atomic_write(folder / STATE_FILE, lambda f: pickle.dump({**state, "arrays": arrays_name}, f))
    for old in folder.glob("arrays-*.npz"):
        if old.name != arrays_name:
            old.unlink()


def load(folder: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]] | None:
    """The latest checkpoint in `folder`, or None when there is none."""
    state_path = folder / STATE_FILE
    if not state_path.exists():
        return None
    with open(state_path, "rb") as handle:
        state = pickle.load(handle)
    with np.load(folder / state["arrays"]) as data:
        arrays = {name: data[name] for name in data.files}
    return arrays, state


def pack(prefix: str, values: list[np.ndarray]) -> dict[str, np.ndarray]:
    return {f"{prefix}/{i}": np.asarray(v) for i, v in enumerate(values)}


def unpack(prefix: str, arrays: dict[str, np.ndarray]) -> list[np.ndarray]:
    count = sum(1 for name in arrays if name.startswith(prefix + "/"))
    return [arrays[f"{prefix}/{i}"] for i in range(count)]
