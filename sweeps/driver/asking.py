"""Asking Optuna for trials within the budget, each made into a `LiveTrial` ready to submit.

The driver asks what a free slot starts now (a blind sampler's next trial ahead, `sweeps.driver.loop`);
this unit decides whether the budget allows another trial (timeout, max_failed, and n_trials
over the whole study: its finished trials, whichever driver ran them, plus the trials running,
this session's and other drivers', stay below it; a lost trial re-queued is owed and asked
whatever the count, since it may have been counted as running when the budget was met; two
drivers at the budget may then both ask, one getting the copy and the other a new trial: one
over, as when two drivers ask the last trial at the same moment), asks, leases the trial to this session
(`sweeps.store.leases`), samples the params, and times the ask (`sweeps.driver.pace`), warning
when asks slow the sweep.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import optuna
from distributed import Client, Event
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import TrialState

from sweeps.driver import dispatch
from sweeps.driver.heartbeat import Heartbeat
from sweeps.driver.pace import Pace
from sweeps.driver.tally import Tally
from sweeps.driver.trial import LiveTrial
from sweeps.store import leases
from sweeps.store.checkpoints import checkpoint_key
from sweeps.store.journal import state_counts, writes_together
from sweeps.store.optuna_private import tell, trial_id
from sweeps.study.components import SAMPLERS, make_sampler, session_seed
from sweeps.study.space import grid_size, seed_configs, suggest
from sweeps.study.spec import StudySpec

COUNT_EVERY_S = 1.0


def budget_trials(spec: StudySpec) -> int | None:
    """Finished trials to reach: `budget.n_trials`, capped by the grid's size."""
    if spec.sampler.name == "grid" and spec.budget.n_trials is not None:
        return min(spec.budget.n_trials, grid_size(spec))
    return spec.budget.n_trials


class Asker:
    """Asks for one sweep session. `asked` holds its trials not yet told (re-queued on Ctrl-C);
    each is leased to `session` and its lease renewed by `heartbeat`."""

    def __init__(self, spec: StudySpec, study: optuna.Study, client: Client, topic: str, tally: Tally,
                 pace: Pace, say: Callable[[str], None], session: str, heartbeat: Heartbeat):
        self.spec, self.study, self.client, self.topic = spec, study, client, topic
        self.tally, self.pace, self.say = tally, pace, say
        self.session, self.heartbeat = session, heartbeat
        self.others_running = 0  # other drivers' RUNNING trials, at the last count
        self.owed = 0  # lost trials re-queued (WAITING), at the last count
        self.counted = float("-inf")  # when (monotonic)
        self.n_trials = budget_trials(spec)
        self.max_failed = spec.budget.max_failed if spec.budget.max_failed is not None else (self.n_trials or 100)
        self.asked: set[int] = set()
        self.stopping: str | None = None
        self.sampler_seed: int | None = None
        self.blind_sampler = SAMPLERS[spec.sampler.name].blind  # it draws without looking at finished trials
        self.params_checked = False  # a trial's params may be written as one append (`ask`)

    def seed_sampler(self) -> None:
        """This session's sampler, seeded apart from other sessions' (`session_seed`)."""
        self.sampler_seed = session_seed(self.study, self.spec.sampler.seed)
        self.study.sampler = make_sampler(self.spec, self.sampler_seed)

    def count(self) -> None:
        """Count the study's finished trials (whichever driver ran them) into the tally, and the
        other drivers' RUNNING trials (all RUNNING trials but this session's), and whether the
        next trial an ask gets is a lost trial re-queued (`sweeps.driver.recovery`): `n_trials`
        leaves none waiting (timeout and max_failed do)."""
        self.counted = time.monotonic()
        counts = state_counts(self.study)
        self.tally.finished_before = counts[TrialState.COMPLETE] + counts[TrialState.PRUNED] \
            - self.tally.completed - self.tally.pruned
        self.others_running = max(0, counts[TrialState.RUNNING] - len(self.asked))
        # `ask` takes the oldest waiting trial: only a copy at the head is owed (a mate or a
        # user's enqueued trial ahead of it keeps to the budget, and so does the copy then).
        waiting = self.study.get_trials(deepcopy=False, states=(TrialState.WAITING,)) if counts[TrialState.WAITING] else []
        self.owed = bool(waiting) and "requeued_from" in waiting[0].user_attrs

    def waits_for_others(self) -> bool:
        """With nothing of its own in flight: whether the budget may still need this session,
        once the other drivers' running trials end or their leases expire."""
        return not self.stopping and self.n_trials is not None and self.others_running > 0 \
            and self.tally.finished < self.n_trials

    def can_ask(self, active: int) -> bool:
        """Whether the budget allows another trial with `active` of this session's in flight
        (asked, not failed), counting what every driver has finished and has running."""
        if self.stopping:
            return False
        timeout = self.spec.budget.timeout
        if timeout is not None and self.tally.elapsed >= timeout:
            self.stopping = f"timeout of {timeout:g} s reached"
        elif self.tally.failed > self.max_failed:
            self.stopping = f"{self.tally.failed} trials failed (budget.max_failed = {self.max_failed})"
        elif self.n_trials is not None:
            # The study is counted afresh (a read of every trial on an RDB or Redis) at most every
            # COUNT_EVERY_S, and before each ask once the budget is within `parallel` trials;
            # between counts, this session's own trials are counted as they go.
            left = self.n_trials - self.tally.finished - self.others_running - active
            if left <= self.spec.parallel or time.monotonic() >= self.counted + COUNT_EVERY_S:
                self.count()
            if self.tally.finished + self.others_running + active >= self.n_trials and not self.owed:
                return False
        if self.stopping:
            self.say(f"no new trials: {self.stopping}")
            return False
        return True

    def first(self, active: Callable[[], int]) -> LiveTrial | None:
        """The trial leading a new task (asking again past trials whose params fail)."""
        while self.can_ask(active()):
            trial = self.ask()
            if trial is not None:
                return trial
        return None

    def ask(self) -> LiveTrial | None:
        """Ask Optuna for a trial and prepare its tasks' parts; None when its params cannot be used (the
        trial is FAIL with the reason)."""
        began = time.perf_counter()
        with sigint_deferred(), warnings.catch_warnings():  # a Ctrl-C must find every trial asked in `asked`
            # Optuna warns that an RDB's heartbeats are meant for `Study.optimize`: here the driver renews them.
            warnings.filterwarnings("ignore", message="Heartbeat of storage")
            trial = self.study.ask()
            self.asked.add(trial.number)
        try:
            with writes_together(trial.storage) if self.params_checked else contextlib.nullcontext():
                params = suggest(trial, self.spec)  # samplers like TPE draw here, not in ask
                configs = seed_configs(self.spec, params)
                seeds = [config["seed"] for config in configs]
                with writes_together(trial.storage):
                    leases.take(trial.storage, trial_id(trial), self.session)
                    trial.set_user_attr("finished_when_asked", self.tally.finished)
                    trial.set_user_attr("sampler_seed", self.sampler_seed)
                    trial.set_user_attr("seeds", seeds)
            self.heartbeat.hold(trial_id(trial))
        except UpdateFinishedTrialError:  # this driver stalled past storage.grace: another took the trial over
            self.asked.discard(trial.number)
            self.heartbeat.drop(trial_id(trial))
            self.say(f"trial {trial.number} was taken over by another driver while this one asked it")
            return None
        except (ValueError, TypeError) as error:
            trial.set_user_attr("fail_reason", f"suggest: {error}")
            tell(self.study, trial, state=TrialState.FAIL)
            self.asked.discard(trial.number)
            self.tally.failed += 1
            return None
        finally:
            self.pace.add("ask", time.perf_counter() - began)
        # The journal checks a param against the study's as it reads the write back (a rerun with
        # a changed space fails here, this trial only): its kind, log scale or choices, which a
        # session never changes. Once one trial's params passed, the next trials' params can go
        # with their attributes as one append, where nothing is read back until the block's end;
        # only with a blind sampler: what it reads while it draws was written before the block.
        self.params_checked = self.blind_sampler
        if (advice := self.pace.advice(self.tally.finished, self.tally.mean_trial_seconds, self.spec.parallel)):
            self.say(advice)
        stop = Event(dispatch.stop_event_name(self.topic, trial.number), client=self.client)
        units = [tuple(seeds)] if self.spec.population else [(seed,) for seed in seeds]
        return LiveTrial(trial, seeds, units, stop, dict(zip(seeds, configs)), checkpoint_key(trial))


def format_params(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


@contextlib.contextmanager
def sigint_deferred() -> Iterator[None]:
    """Hold a Ctrl-C that arrives inside the block until its end (main thread only; elsewhere
    no KeyboardInterrupt is raised anyway)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if caught:
            signal.raise_signal(signal.SIGINT)
