"""A task's events go to the driver in batches: a burst after a quiet spell at once, the
events that follow together at the end of the interval, the rest at close unless the outcome
carries it."""

import time

import pytest

from sweeps.worker.outbox import Outbox

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


def test_a_burst_after_a_quiet_spell_goes_at_once_and_what_follows_at_the_interval_end():
    sent = Recorder()
    outbox = Outbox(sent, every=1.5, gather=0.2)
    added = time.monotonic()
    outbox.add({"k": 0})  # a burst: members evaluating at one boundary
    outbox.add({"k": 1})
    wait_for_batches(sent, 1)
    for k in (2, 3):  # within the interval: they wait for its end, together
        outbox.add({"k": k})
    wait_for_batches(sent, 2)
    time.sleep(2.0)  # quiet
    quiet = time.monotonic()
    outbox.add({"k": 4})
    wait_for_batches(sent, 3)
    outbox.add({"k": 5})
    closing = time.monotonic()
    outbox.close()
    assert [[e["k"] for e in batch] for _, batch in sent.batches] == [[0, 1], [2, 3], [4], [5]]
    moments = [moment for moment, _ in sent.batches]
    assert 0.2 <= moments[0] - added < 1.2  # gathered its burst, then went without waiting the interval
    assert moments[1] - moments[0] >= 1.5  # what followed waited out the interval
    assert 0.2 <= moments[2] - quiet < 1.2  # after a quiet spell: at once again
    assert moments[3] - closing < 1.2  # close sends what is left without waiting


def test_close_sends_or_drops_the_rest_at_once_and_a_failed_send_is_raised_by_the_next_add_and_close():
    sent = Recorder()
    outbox = Outbox(sent, every=60)
    outbox.add({"k": 0})
    outbox.add({"k": 1})
    began = time.monotonic()
    outbox.close()
    assert time.monotonic() - began < 10 and [batch for _, batch in sent.batches] == [[{"k": 0}, {"k": 1}]]

    kept = Recorder()
    outbox = Outbox(kept, every=60, gather=60)
    outbox.add({"event": "started"})
    outbox.add({"event": "eval"})
    outbox.close(carried=("eval",))  # the task's outcome carries its evaluations
    assert [batch for _, batch in kept.batches] == [[{"event": "started"}]]

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


def test_a_lazy_event_waits_for_another_to_carry_it_or_out_the_interval():
    sent = Recorder()
    outbox = Outbox(sent, every=1.5, gather=0.05)
    began = time.monotonic()
    outbox.add({"k": "start"}, lazy=True)  # a task's start
    time.sleep(0.5)
    evaluated = time.monotonic()
    outbox.add({"k": "eval"})  # carries it, at once
    wait_for_batches(sent, 1)
    time.sleep(2.0)  # quiet
    lazy = time.monotonic()
    outbox.add({"k": "start"}, lazy=True)  # alone: it goes at the interval's end
    wait_for_batches(sent, 2)
    outbox.close()
    assert [[e["k"] for e in batch] for _, batch in sent.batches] == [["start", "eval"], ["start"]]
    moments = [moment for moment, _ in sent.batches]
    assert moments[0] - began >= 0.5 and moments[0] - evaluated < 1.0
    assert moments[1] - lazy >= 1.5
