"""The sweep driver: Optuna ask/tell in the client, tasks of trials in flight on Dask.

Keeps `parallel` tasks in flight: a free slot gets the next task `sweeps.driver.forming` makes (a
trial's seeds as one population, trained in one compiled graph, or one task per seed with
`population: false`; with `pack: N` up to N - 1 mates asked with the first trial's
shape-changing params fixed). Completions and events reach the driver through one queue (which
`distributed.as_completed` cannot offer without polling); events come in batches
(`sweeps.worker.outbox`; a returned task's last evaluations come with its outcome), and a task's slot is
free as soon as it returned, before its outcome is read from its worker. With a sampler that
draws blind, the next trial is asked while every slot is busy: a freed slot only submits it.
What each trial reports, when the pruner may stop it and how it ends is `sweeps.driver.trial`'s;
a pruned trial is told to stop through its own named `distributed.Event` (only its members
stop). A task whose worker died is submitted again, up to `budget.max_retries` times, and
resumes from its checkpoint in the run folder when the workers see it. Ctrl-C and dead
drivers re-queue trials (`sweeps.driver.recovery`).

Several drivers may grow one study (a shared storage, even a shared run folder): each leases
the trials it runs and renews the leases from a thread (`sweeps.driver.heartbeat`), which wakes
the loop after each round (`Tick`): then trials of this session that another driver took over
(this one stalled past `storage.grace`) stop here, and other drivers' expired trials are taken
over. The budget counts the whole study's trials; a session with nothing in flight waits while
other drivers' running trials may still leave the budget short. A storage unreachable for
longer than `storage.outage` stops the session: its runs stop, keeping their checkpoints, and
its trials stay RUNNING until their leases expire and a driver takes them over.

Work per event is constant in the number of finished trials: a finished trial's rows go to the
writer (`sweeps.store.writer`: a log line now, Parquet from its thread), it is told to Optuna, and its
stop event and checkpoint folders are dealt with once the slot is refilled. Without a pruner,
the evaluations that came in together are reported as one append to the journal. Optuna's own
calls are timed (`sweeps.driver.pace`), with a warning when asks slow the sweep.
"""

from __future__ import annotations

import contextlib
import functools
import queue
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import optuna
from distributed import Client
from optuna.exceptions import UpdateFinishedTrialError

from sweeps.driver import dispatch, recovery
from sweeps.driver.asking import Asker, budget_trials, format_params
from sweeps.driver.endings import TrialEndings
from sweeps.driver.forming import TaskForming
from sweeps.driver.heartbeat import Heartbeat
from sweeps.driver.pace import Pace
from sweeps.driver.tally import Monitor, Tally
from sweeps.driver.trial import LiveTrial, Task
from sweeps.store.journal import writes_together
from sweeps.store.optuna_private import storage_of, study_id
from sweeps.store.outages import StorageUnreachable
from sweeps.store.writer import ResultsWriter, session_ended
from sweeps.study.spec import StudySpec
from sweeps.worker.outcome import Outcome
from sweeps.worker.supervise import ENTRY
from sweeps.worker.task import train_task


class Driver(TrialEndings):
    """One sweep session over `study`; `drive()` returns the tally when the budget is spent."""

    def __init__(
        self,
        spec: StudySpec,
        study: optuna.Study,
        client: Client,
        run_dir: Path,
        *,
        monitor: Monitor | None = None,
        entry: str = ENTRY,
    ):
        self.spec, self.study, self.client = spec, study, client
        self.parallel = spec.parallel
        self.monitor = monitor
        self.entry = entry
        self.run_dir = Path(run_dir).resolve()
        self.session = uuid.uuid4().hex[:12]  # whose leases (`sweeps.store.leases`), whose rows log
        self.writer = ResultsWriter(run_dir, study, session=self.session)
        self.topic = f"dqn-sweep-{self.session}"
        self.inbox: queue.Queue[dispatch.Message] = queue.Queue()
        self.storage = storage_of(study)
        self.heartbeat = Heartbeat(self.storage, study_id(study), self.session, spec.storage.heartbeat,
                                   self.inbox.put)
        self.trials: dict[int, LiveTrial] = {}  # this session's trials not yet told
        self.futures: dict[Any, Task] = {}
        self.returned: set[Any] = set()  # futures whose task returned, outcome not yet handled
        self.outcome_readers = ThreadPoolExecutor(max_workers=4, thread_name_prefix="outcome-reader")
        self.tally = Tally(budget_trials(spec), spec.budget.timeout)
        self.pace = Pace(spec.sampler.name)
        self.asker = Asker(spec, study, client, self.topic, self.tally, self.pace, self.say, self.session,
                           self.heartbeat)
        self.forming = TaskForming(spec, study, self.run_dir, self.asker, self.trials)
        self.ended: list[LiveTrial] = []  # told to Optuna; stop event and folders still to go
        self.stops_set: set[int] = set()  # trials whose stop event was set (the scheduler holds it)
        self.prunes = not isinstance(study.pruner, optuna.pruners.NopPruner)

    # -- the loop -----------------------------------------------------------------------
    def drive(self) -> Tally:
        self.start()
        self.client.subscribe_topic(self.topic, lambda event: self.inbox.put(dispatch.Events(event[1])))
        try:
            while True:
                self.fill()
                self.tidy()
                if not self.futures and not self.asker.waits_for_others():
                    break
                self.ask_ahead()
                self.wait_and_handle()
        except KeyboardInterrupt:
            self.interrupt()
            raise
        except StorageUnreachable:  # its trials stay RUNNING, for a driver to take over once their leases expire
            self.stop_runs()
            raise
        finally:
            self.heartbeat.stop()
            self.client.unsubscribe_topic(self.topic)
            self.outcome_readers.shutdown(wait=False)
            self.tidy()
            self.writer.close()
            self.say(self.pace.summary())
        return self.tally

    def start(self) -> None:
        """Take over what dead drivers left (`sweeps.driver.recovery`), seed this session's
        sampler, count earlier sessions' results, start renewing leases."""
        recovery.recover(self.study, self.run_dir, self.spec.storage.grace, self.dead, self.say)
        self.asker.seed_sampler()
        recovery.count_earlier(self.study, self.tally)
        self.asker.count()
        self.heartbeat.start()

    def dead(self, session: str) -> bool:
        """Whether driver `session` is known dead: it shared this run folder and its lock is free."""
        return session in self.writer.ended_sessions or session_ended(self.run_dir, session)

    def fill(self, freed: int = 0) -> None:
        """Submit tasks until `parallel` are in flight (not counting `freed` finished ones still
        to handle) or the budget allows no more."""
        while len(self.futures) - freed < self.parallel:
            task = self.forming.next_task()
            if task is None:
                break
            self.submit(task)
        self.show()

    def ask_ahead(self) -> None:
        """With a sampler that draws without looking at finished trials, ask the next trial while
        every slot is busy, so that a freed slot only submits it. A trial runs once asked, so
        only without `budget.timeout` (it could start long after it) and while all trials in
        flight could fail without reaching `budget.max_failed`."""
        if self.asker.blind_sampler and self.spec.budget.timeout is None \
                and self.tally.failed + len(self.trials) <= self.asker.max_failed:
            self.forming.ask_next()

    def submit(self, task: Task) -> None:
        for number, _ in task:
            trial = self.trials[number]
            trial.packed_with.update(other for other, _ in task if other != number)
            if trial.started is None:
                trial.started = time.monotonic()
                self.say(f"trial {number} started: {format_params(trial.optuna_trial.params)}")
        carried = dispatch.payload(task, self.trials, self.spec, topic=self.topic, entry=self.entry, run_dir=self.run_dir)
        future = self.client.submit(train_task, carried, pure=False, **dispatch.task_resources(self.spec))
        self.futures[future] = task
        self.writer.changed()
        future.add_done_callback(functools.partial(dispatch.pass_outcome, self.inbox, self.outcome_readers))

    def wait_and_handle(self) -> None:
        """Block until a message arrives, then handle everything that is in: the events (a
        trial's events before its end), then the completions.

        A task's slot is free once the task returned (`dispatch.pass_outcome` says so before its
        outcome is read from the worker). With a sampler that draws without looking at finished
        trials, free slots are refilled first (unless their trials' failures could reach
        `budget.max_failed`); a model-based sampler asks once the trials are told.
        """
        messages = dispatch.take_messages(self.inbox, 0.0 if self.prunes else dispatch.EVENTS_LINGER_S)
        for broken in (m for m in messages if isinstance(m, dispatch.Broken)):
            raise broken.error
        if any(isinstance(m, dispatch.Tick) for m in messages):
            self.on_tick()
        self.returned.update(m.future for m in messages if isinstance(m, dispatch.Freed) and m.future in self.futures)
        done = [(m.future, m.outcome) for m in messages if isinstance(m, dispatch.Done) and m.future in self.futures]
        # A lost task's slot is its rerun's. (A returned task whose worker dies before its outcome
        # is read is run again by the scheduler: one task more than `parallel`, for a while.)
        self.returned.update(future for future, outcome in done if outcome["status"] != "lost")
        if self.returned and self.asker.blind_sampler and self.tally.failed + len(self.returned) <= self.asker.max_failed:
            self.fill(len(self.returned))
        self.on_events([event for m in messages if isinstance(m, dispatch.Events) for event in m.events])
        for future, outcome in done:
            self.returned.discard(future)
            self.on_done(self.futures.pop(future), outcome)

    # -- events and pruning -------------------------------------------------------------------
    def on_events(self, events: list[dict[str, Any]]) -> None:
        """Record the events and report the evaluations. With a pruner, each report is judged
        as it is made (Optuna's pruners judge step by step: interval steps, rungs); without one,
        the reports that came in together go to the storage as one append."""
        evals = []
        for event in events:
            trial = self.trials.get(event.get("trial"))
            if trial is not None and event.get("event") == "started":
                unit = tuple(event["seeds"])
                trial.starts[unit] = trial.starts.get(unit, 0) + 1
            elif trial is not None and event.get("event") == "eval":
                evals.append((trial, event))
        if not evals:
            return
        held = contextlib.nullcontext() if self.prunes else writes_together(self.storage)
        pruned = []
        try:
            with self.pace.timed("report"), held:
                for trial, event in evals:
                    try:
                        if trial.on_eval(event, self.spec.objective, self.prunes):
                            pruned.append(trial)
                    except UpdateFinishedTrialError:  # another driver took it over
                        self.lose(trial)
        except UpdateFinishedTrialError:  # refused as the block was read back: whose, the storage says
            self.find_lost()
        for trial in pruned:
            self.stop_trial(trial)
            self.say(f"trial {trial.number} pruned at step {max(trial.reported)}")

    def stop_trial(self, trial: LiveTrial) -> None:
        """Stop the trial's members in flight and drop its parts not yet in a task. A lost task
        waiting to rerun keeps them (its checkpoint holds all members); they stop at once."""
        trial.stop.set()
        self.stops_set.add(trial.number)
        trial.dropped.update(self.forming.drop(trial.number))

    # -- completions ------------------------------------------------------------------------
    def on_done(self, task: Task, outcome: Outcome) -> None:
        if outcome["status"] == "lost" and self.retry(task, outcome["reason"]):
            return
        parts = dispatch.split_outcome(task, outcome)
        # A returned task's last evaluations come with its results, not as events (`sweeps.worker.task`).
        # A pruner judges them now, step by step (its rungs are recorded as it judges), as it judges
        # a trial with parts still in flight; without one they are reported as the trial concludes.
        self.on_events([event for number, unit, part in parts if self.prunes or len(self.trials[number].units) > 1
                        for event in dispatch.result_evals(number, unit, part)])
        for number, unit, part in parts:
            trial = self.trials[number]
            if trial.settle(unit, part):
                self.stop_trial(trial)
            if trial.settled:
                self.finish(trial)

    def retry(self, task: Task, reason: str) -> bool:
        """Submit a task whose worker died again, unless all its trials are done or one of
        them is out of retries."""
        going = [(self.trials[number], unit) for number, unit in task if self.trials[number].live]
        max_retries = self.spec.budget.max_retries
        if not going or any(trial.retries.get(unit, 0) >= max_retries for trial, unit in going):
            return False
        for trial, unit in going:
            trial.retries[unit] = trial.retries.get(unit, 0) + 1
        self.forming.rerun(task)
        attempt = max(trial.retries[unit] for trial, unit in going)
        self.say(f"{dispatch.task_label(task)}: {dispatch.first_line(reason)}; retry {attempt} of {max_retries}")
        return True

    def show(self) -> None:
        self.tally.running = len(self.trials)
        if self.monitor:
            self.monitor.update(self.tally)

    def say(self, line: str) -> None:
        if self.monitor:
            self.monitor.log(line)
        self.show()
