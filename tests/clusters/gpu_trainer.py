"""The fake trainer, recording which GPU ids its process was given and when it ran.

Each run writes `$DQN_SWEEP_TEST_RECORD/<pid>.json`: CUDA_VISIBLE_DEVICES, the config's
`devices`, and its start and end times.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from tests.sweeps.fake_trainer import train as fake_train


def train(config, on_event=None, checkpoint_dir=None):
    started = time.time()
    result = fake_train(config, on_event=on_event, checkpoint_dir=checkpoint_dir)
    record = {"cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"), "devices": config.devices,
              "start": started, "end": time.time(), "seed": config.seed, "learning_rate": config.learning_rate}
    Path(os.environ["DQN_SWEEP_TEST_RECORD"], f"{os.getpid()}.json").write_text(json.dumps(record))
    return result
