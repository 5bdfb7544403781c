"""A task's events go to the driver in batches: the first after a quiet spell at once, the
ones that follow together at the end of the interval, nothing left behind at close."""

import time

import pytest

from sweeps.outbox import Outbox

pytestmark = pytest.mark.timeout(30)


class Recorder:
    def __init__(self) -> None:
        self.batches: list[tuple[float, list[dict]]] = []

    def __call__(self, batch: list[dict]) -> None:
        self.batches.append((time.monotonic(), batch))


def wait_for_batches(sent: Recorder, count: int) -> None:
    deadline = time.monotonic() + 10
    while len(sent.batches) < count and time.monotonic() < deadline:
        time.sleep(0.01)


def test_events_in_a_burst_go_together_and_the_first_after_a_quiet_spell_at_once():
    sent = Recorder()
    began = time.monotonic()
    outbox = Outbox(sent, every=1.5)
    outbox.add({"k": 0})  # a task's "started" waits for what follows it
    outbox.add({"k": 1})
    wait_for_batches(sent, 1)
    time.sleep(2.0)  # quiet
    added = time.monotonic()
    outbox.add({"k": 2})
    wait_for_batches(sent, 2)
    for k in (3, 4):
        outbox.add({"k": k})
    wait_for_batches(sent, 3)
    outbox.add({"k": 5})
    closing = time.monotonic()
    outbox.close()
    assert [[e["k"] for e in batch] for _, batch in sent.batches] == [[0, 1], [2], [3, 4], [5]]
    moments = [moment for moment, _ in sent.batches]
    assert moments[0] - began >= 1.5  # the first events waited out the interval, together
    assert moments[1] - added < 1.2  # after a quiet spell: at once, not at the interval's end
    assert moments[2] - moments[1] >= 1.5  # a burst waits out the interval
    assert moments[3] - closing < 1.2  # close sends what is left without waiting


def test_close_sends_the_rest_at_once_and_a_failed_send_is_raised_by_the_next_add_and_close():
    sent = Recorder()
    outbox = Outbox(sent, every=60)
    outbox.add({"k": 0})
    outbox.add({"k": 1})
    began = time.monotonic()
    outbox.close()
    assert time.monotonic() - began < 10 and [batch for _, batch in sent.batches] == [[{"k": 0}, {"k": 1}]]

    def refuse(batch):
        raise RuntimeError("scheduler gone")

    failing = Outbox(refuse, every=0.01)
    failing.add({"k": 0})
    deadline = time.monotonic() + 10
    while failing.error is None and time.monotonic() < deadline:
        time.sleep(0.01)
    with pytest.raises(RuntimeError, match="scheduler gone"):
        failing.add({"k": 1})  # the task fails now, not after training to the end
    with pytest.raises(RuntimeError, match="scheduler gone"):
        failing.close()
