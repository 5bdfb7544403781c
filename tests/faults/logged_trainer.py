"""The fake trainer, logging each run's life to `$DQN_SWEEP_RUNS_LOG` (a JSON line per start
and per evaluation: run id, learning rate, Unix time), so that a test can tell whether two runs
of one trial were alive at the same time."""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path

from tests.sweeps import fake_trainer


def train_population(configs, on_event=None, checkpoint_dir=None):
    run, path = uuid.uuid4().hex, os.environ["DQN_SWEEP_RUNS_LOG"]

    def log(kind: str) -> None:
        line = {"run": run, "lr": configs[0].learning_rate, "t": time.time(), "kind": kind}
        with open(path, "a") as file:
            file.write(json.dumps(line) + "\n")

    def relay(event):
        log("eval")
        return on_event(event) if on_event is not None else None

    log("start")
    return fake_trainer.train_population(configs, relay, checkpoint_dir)


def lives(path) -> dict[float, list[tuple[float, float]]]:
    """Each learning rate's runs as (first, last) Unix times, in start order."""
    runs: dict[str, list[dict]] = {}
    for line in Path(path).read_text().splitlines():
        entry = json.loads(line)
        runs.setdefault(entry["run"], []).append(entry)
    spans: dict[float, list[tuple[float, float]]] = {}
    for entries in runs.values():
        times = [e["t"] for e in entries]
        spans.setdefault(entries[0]["lr"], []).append((min(times), max(times)))
    return {lr: sorted(found) for lr, found in spans.items()}
