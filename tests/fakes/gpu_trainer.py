"""The fake trainer, recording which GPU ids its process was given and when it ran.

Each run writes `$DQN_SWEEP_TEST_RECORD/<pid>-<ns>.json` (a warm process runs several):
CUDA_VISIBLE_DEVICES, the config's `devices`, and its start and end times.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from tests.fakes import fake_trainer


def train_population(configs, on_event=None, checkpoint_dir=None):
    started = time.time()
    results = fake_trainer.train_population(configs, on_event=on_event, checkpoint_dir=checkpoint_dir)
    first = configs[0]
    record = {"cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"), "devices": first.devices,
              "start": started, "end": time.time(), "seeds": [c.seed for c in configs],
              "learning_rate": first.learning_rate}
    Path(os.environ["DQN_SWEEP_TEST_RECORD"], f"{os.getpid()}-{time.time_ns()}.json").write_text(json.dumps(record))
    return results
