"""Trainers that fail the hard way, for the fault tests (no TensorFlow unless asked).

`train_population` picks its fault by a member's `gamma`: 0.91 exits with status 1, 0.92
segfaults, 0.93 is SIGKILLed (what the OOM killer does), 0.94 hangs, 0.5 diverges (the fake
trainer's NaN); anything else trains like the fake trainer. `nan_train_population` runs the real trainer on an
environment whose rewards are NaN, so it diverges for real. `leaky_population` prints its
environment, and its worker's, to stderr and crashes.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

from tests.fakes import fake_trainer

FAULTS = {0.91: "exit", 0.92: "segfault", 0.93: "sigkill", 0.94: "hang"}


def train_population(configs, on_event=None, checkpoint_dir=None):
    fault = next((FAULTS[c.gamma] for c in configs if c.gamma in FAULTS), None)
    if fault is not None:
        print(f"faulty trainer: about to {fault}", file=sys.stderr, flush=True)
    if fault == "exit":
        os._exit(1)
    if fault == "segfault":
        os.kill(os.getpid(), signal.SIGSEGV)
    if fault == "sigkill":
        os.kill(os.getpid(), signal.SIGKILL)
    if fault == "hang":
        time.sleep(3600)
    return fake_trainer.train_population(configs, on_event, checkpoint_dir)


def nan_train_population(configs, on_event=None, checkpoint_dir=None):
    import dqn_tf
    from tests.fakes import nan_env

    env_id = nan_env.register()
    configs = [{**config.to_dict(), "env_id": env_id} for config in configs]
    return dqn_tf.train_population(configs, on_event, checkpoint_dir)


def leaky_population(configs, on_event=None, checkpoint_dir=None):
    """Print the child's environment, then the worker's (read from /proc: a stand-in for a
    secret the trainer got some other way, e.g. from a library that echoes its credentials),
    one JSON line each, to stderr; exit with status 1."""
    print("child env: " + json.dumps(dict(os.environ)), file=sys.stderr)
    worker = Path(f"/proc/{os.getppid()}/environ").read_bytes().decode(errors="replace")
    print("worker env: " + json.dumps(dict(item.partition("=")[::2] for item in worker.split("\0") if item)),
          file=sys.stderr, flush=True)
    os._exit(1)
