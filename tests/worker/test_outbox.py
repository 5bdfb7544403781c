"""A task's events go to the driver in batches: a burst after a quiet spell at once, the
events that follow together at the end of the interval, the rest at close unless the outcome
carries it.

The outbox runs on a clock of the test's (`Clock`): its time moves only when the test says, and
after each move the test waits until the outbox's thread is idle again. So each batch's moment
is exact, and "nothing was sent yet" is a fact, not a guess about a busy machine.
"""

from __future__ import annotations

import threading
import time
import types
from typing import Self

import pytest

from sweeps.worker import outbox as outbox_module
from sweeps.worker.outbox import Outbox

pytestmark = pytest.mark.timeout(30)


class Clock:
    """The outbox module's `time.monotonic` and `threading.Condition`: waits end when notified
    or when `advance` moves the time past their timeout, never by the wall clock."""

    def __init__(self) -> None:
        self.now = 0.0
        self.real = threading.Condition()
        self.changes = 0  # every notify and every move of the time
        self.idle_at = -1  # `changes` when the outbox's thread last began to wait

    def monotonic(self) -> float:
        return self.now

    def condition(self) -> _Condition:
        return _Condition(self)

    def advance(self, seconds: float, settle: bool = True) -> None:
        """Move the time on once the outbox's thread has seen what happened until now."""
        self.settle()
        with self.real:
            self.now += seconds
            self.changes += 1
            self.real.notify_all()
        if settle:
            self.settle()

    def settle(self, timeout: float = 10) -> None:
        """Wait (in real time) until the outbox's thread waits again, having seen every change."""
        deadline = time.monotonic() + timeout
        with self.real:
            while self.idle_at != self.changes:
                assert time.monotonic() < deadline, f"the outbox's thread did not settle within {timeout} s"
                self.real.wait(0.05)


class _Condition:
    def __init__(self, clock: Clock):
        self.clock = clock

    def __enter__(self) -> Self:
        self.clock.real.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.clock.real.__exit__(*exc)

    def notify(self, n: int = 1) -> None:
        self.clock.changes += 1
        self.clock.real.notify_all()

    def wait(self, timeout: float | None = None) -> bool:
        clock = self.clock
        deadline = None if timeout is None else clock.now + timeout
        if deadline is not None and clock.now >= deadline:
            return False
        clock.idle_at = clock.changes
        clock.real.notify_all()  # for `settle`
        clock.real.wait(10)  # woken by a change (the 10 s only bound a broken test)
        return deadline is None or clock.now < deadline

    def wait_for(self, predicate, timeout: float | None = None):
        deadline = None if timeout is None else self.clock.now + timeout
        while not (result := predicate()):
            if deadline is not None and self.clock.now >= deadline:
                return result
            self.wait(None if deadline is None else deadline - self.clock.now)
        return result


@pytest.fixture
def clock(monkeypatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(outbox_module, "time", types.SimpleNamespace(monotonic=clock.monotonic))
    monkeypatch.setattr(outbox_module, "threading", types.SimpleNamespace(Condition=clock.condition,
                                                                          Thread=threading.Thread))
    return clock


class Recorder:
    """The outbox's `send`: each batch with the clock's time it went."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.batches: list[tuple[float, list]] = []

    def __call__(self, batch: list[dict]) -> None:
        self.batches.append((self.clock.now, [event["k"] for event in batch]))


def test_a_burst_after_a_quiet_spell_goes_at_once_and_what_follows_at_the_interval_end(clock):
    sent = Recorder(clock)
    outbox = Outbox(sent, every=1.5, gather=0.25)
    clock.settle()
    outbox.add({"k": 0})  # a burst: members evaluating at one boundary
    outbox.add({"k": 1})
    clock.advance(0.25)
    assert sent.batches == [(0.25, [0, 1])]  # gathered its burst, then went without waiting the interval
    for k in (2, 3):  # within the interval: they wait for its end, together
        outbox.add({"k": k})
    clock.advance(1.25)
    assert sent.batches == [(0.25, [0, 1])]  # nothing before the interval's end (0.25 + 1.5)
    clock.advance(0.25)
    assert sent.batches[1:] == [(1.75, [2, 3])]
    clock.advance(2.0)  # quiet
    outbox.add({"k": 4})
    clock.advance(0.25)
    assert sent.batches[2:] == [(4.0, [4])]  # after a quiet spell: at once again
    outbox.add({"k": 5})
    outbox.close()
    assert sent.batches[3:] == [(4.0, [5])]  # close sends what is left without waiting


def test_close_sends_or_drops_the_rest_at_once_and_a_failed_send_is_raised_by_the_next_add_and_close(clock):
    sent = Recorder(clock)
    outbox = Outbox(sent, every=60)
    clock.settle()
    outbox.add({"k": 0})
    outbox.add({"k": 1})
    outbox.close()  # the clock stands still: close waits neither for the gathering nor the interval
    assert sent.batches == [(0.0, [0, 1])]

    kept = Recorder(clock)
    outbox = Outbox(kept, every=60, gather=60)
    clock.settle()
    outbox.add({"k": "started"})
    outbox.add({"k": "eval", "event": "eval"})
    outbox.close(carried=("eval",))  # the task's outcome carries its evaluations
    assert kept.batches == [(0.0, ["started"])]

    def refuse(batch):
        raise RuntimeError("scheduler gone")

    failing = Outbox(refuse, every=0.01, gather=0.25)
    clock.settle()
    failing.add({"k": 0})
    clock.advance(0.25, settle=False)  # the gathering is over: the send fails, and the outbox's thread ends
    failing.thread.join(10)
    assert not failing.thread.is_alive() and isinstance(failing.error, RuntimeError)
    with pytest.raises(RuntimeError, match="scheduler gone"):
        failing.add({"k": 1})  # the task fails now, not after training to the end
    with pytest.raises(RuntimeError, match="scheduler gone"):
        failing.close()


def test_a_lazy_event_waits_for_another_to_carry_it_or_out_the_interval(clock):
    sent = Recorder(clock)
    outbox = Outbox(sent, every=1.5, gather=0.25)
    clock.settle()
    outbox.add({"k": "start"}, lazy=True)  # a task's start
    clock.advance(0.5)
    assert sent.batches == []  # it waits
    outbox.add({"k": "eval"})  # carries it, at once
    clock.advance(0.25)
    assert sent.batches == [(0.75, ["start", "eval"])]
    clock.advance(2.0)  # quiet
    outbox.add({"k": "start"}, lazy=True)  # alone: it goes at the interval's end
    clock.advance(1.25)
    assert sent.batches[1:] == []
    clock.advance(0.25)  # 1.5 after it came: the gathering starts
    clock.advance(0.25)
    assert sent.batches[1:] == [(4.5, ["start"])]
    outbox.close()
