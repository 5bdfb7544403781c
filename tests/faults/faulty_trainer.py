"""Trainers that fail the hard way, for the fault tests (no TensorFlow unless asked).

`train_population` picks its fault by a member's `gamma`: 0.91 exits with status 1, 0.92
segfaults, 0.93 is SIGKILLed (what the OOM killer does), 0.94 hangs, 0.5 diverges (the fake
trainer's NaN); anything else trains like the fake trainer. `nan_train_population` runs the real trainer on an
environment whose rewards are NaN, so it diverges for real.
"""

from __future__ import annotations

import os
import signal
import sys
import time

from tests.sweeps import fake_trainer

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
    from tests import nan_env

    env_id = nan_env.register()
    configs = [{**config.to_dict(), "env_id": env_id} for config in configs]
    return dqn_tf.train_population(configs, on_event, checkpoint_dir)
