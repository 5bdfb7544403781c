"""A task's events go to the driver in batches: the first after a quiet spell at once, the
ones that follow together at the end of the interval, nothing left behind at close."""

import threading
import time

import pytest

from sweeps.outbox import Outbox

pytestmark = pytest.mark.timeout(30)


class Recorder:
    def __init__(self) -> None:
        self.batches: list[tuple[float, list[dict]]] = []
        self.arrived = threading.Event()

    def __call__(self, batch: list[dict]) -> None:
        self.batches.append((time.monotonic(), batch))
        self.arrived.set()


def test_events_in_a_burst_go_together_and_sends_are_an_interval_apart():
    sent = Recorder()
    outbox = Outbox(sent, every=0.5)
    outbox.add({"k": 0})
    assert sent.arrived.wait(10)  # the first one at once, alone
    for k in range(1, 4):
        outbox.add({"k": k})
    deadline = time.monotonic() + 10
    while len(sent.batches) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    outbox.add({"k": 4})
    outbox.close()
    assert [[e["k"] for e in batch] for _, batch in sent.batches] == [[0], [1, 2, 3], [4]]
    moments = [moment for moment, _ in sent.batches]
    assert moments[1] - moments[0] >= 0.5  # the burst waited out the interval
    assert moments[2] - moments[1] < 0.5  # close sends what is left without waiting


def test_close_sends_the_rest_and_raises_what_stopped_sending():
    sent = Recorder()
    outbox = Outbox(sent, every=60)
    outbox.add({"k": 0})
    assert sent.arrived.wait(10)
    outbox.add({"k": 1})
    began = time.monotonic()
    outbox.close()
    assert time.monotonic() - began < 10 and [batch for _, batch in sent.batches] == [[{"k": 0}], [{"k": 1}]]

    def refuse(batch):
        raise RuntimeError("scheduler gone")

    failing = Outbox(refuse)
    failing.add({"k": 0})
    with pytest.raises(RuntimeError, match="scheduler gone"):
        failing.close()
