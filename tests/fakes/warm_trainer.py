"""The trainer of the warm-process tests: the faulty trainer (its gamma hooks: 0.91 exits,
0.92 segfaults, 0.94 hangs, ...) that first prints a line naming its seed to stderr, so a
reason can be checked to hold only its own task's lines; `gamma == 0.97` also keeps 64 MiB
alive in the process for good (memory a long-lived process accumulates)."""

from __future__ import annotations

import sys

from tests.fakes import faulty_trainer

HOG_MB = 64
HELD: list[bytes] = []


def train_population(configs, on_event=None, checkpoint_dir=None):
    print(f"warm trainer: seed {configs[0].seed}", file=sys.stderr, flush=True)
    if any(config.gamma == 0.97 for config in configs):
        HELD.append(b"\x01" * (HOG_MB << 20))  # filled, so resident
    return faulty_trainer.train_population(configs, on_event, checkpoint_dir)
