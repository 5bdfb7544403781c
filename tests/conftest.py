"""Shared test setup: quiet, single-threaded TensorFlow so two test processes share 2 cores."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")

# Real PostgreSQL, Redis and the per-backend `storage_url` fixture (tests/servers.py).
pytest_plugins = ["tests.servers"]
