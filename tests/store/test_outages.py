"""A driver's storage gives up on an outage longer than `storage.outage` with one clear error
(`sweeps.store.outages`; a sweep through restarts of the real servers is
`tests/faults/test_storage_restarts.py`)."""

from __future__ import annotations

import time

import optuna
import pytest

from sweeps.store.outages import StorageUnreachable
from sweeps.store.storage import open_storage
from sweeps.study.spec import Storage

pytestmark = pytest.mark.timeout(120)


def test_an_outage_longer_than_storage_outage_stops_with_a_clear_error(own_redis, tmp_path):
    url = own_redis.url()
    study = optuna.create_study(study_name="gone", storage=open_storage(url, tmp_path, Storage(outage=2)))
    study.ask()
    own_redis.kill()
    began = time.monotonic()
    with pytest.raises(StorageUnreachable) as raised:
        study.ask()
    waited = time.monotonic() - began
    message = str(raised.value)
    assert message.startswith(f"storage {url}: unreachable for ") and "storage.outage = 2 s" in message
    assert "ConnectionError" in message
    assert waited >= 2  # it did wait out the outage it was given
