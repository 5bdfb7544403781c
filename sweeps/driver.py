"""The sweep driver: Optuna ask/tell in the client, runs of trials in flight on Dask.

Asks a trial, turns it into one trainer config per seed and groups the seeds into tasks (all
seeds as one population, trained in one compiled graph, unless the study sets `population:
false`: then one task per seed). Asks only what a free task slot can start now: with `pack: N`
the slot's first trial gets up to N - 1 mates asked with its shape-changing params fixed
(`sweeps.packing`), so no trial waits RUNNING while the sampler asks on without its result.
Keeps `parallel` tasks in flight and refills on every completion (no batch barriers;
completions and eval events share one queue, which `distributed.as_completed` cannot offer
without polling). What each trial reports, when the pruner may stop it and how it ends is
`sweeps.trialrun`'s; a pruned trial is told to stop through its own named `distributed.Event`
(only its members stop). A task whose worker died is submitted again, up to
`budget.max_retries` times, and resumes from its checkpoint in the run folder when the workers
see it. Ctrl-C and dead drivers re-queue trials (`sweeps.lifecycle`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import queue
import signal
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import optuna
from distributed import Client, Event, KilledWorker
from optuna.trial import TrialState

from sweeps import lifecycle, search
from sweeps.packing import Mates, shape
from sweeps.results import ResultsWriter
from sweeps.spec import StudySpec, grid_size
from sweeps.tasks import ENTRY, run_seeds
from sweeps.trialrun import Part, Task, TrialRun, seeds_label

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


class Monitor(Protocol):
    """What the driver tells a progress display (see `sweeps.monitor`)."""

    def update(self, tally: Tally) -> None: ...

    def log(self, line: str) -> None: ...


@dataclasses.dataclass
class Tally:
    """Counts of this sweep, for the progress display and the final report."""

    n_trials: int | None
    timeout: float | None
    finished_before: int = 0
    completed: int = 0
    pruned: int = 0
    failed: int = 0
    running: int = 0
    best_value: float | None = None
    best_trial: int | None = None
    started: float = dataclasses.field(default_factory=time.monotonic)
    trial_seconds: list[float] = dataclasses.field(default_factory=list)

    @property
    def finished(self) -> int:
        return self.finished_before + self.completed + self.pruned

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def remaining_seconds(self, parallel: int) -> float | None:
        """Rough: mean trial time x trials left / trials in parallel (or the timeout left)."""
        estimates = []
        if self.n_trials is not None and self.trial_seconds:
            left = max(0, self.n_trials - self.finished)
            mean = sum(self.trial_seconds) / len(self.trial_seconds)
            estimates.append(mean * left / max(1, parallel))
        if self.timeout is not None:
            estimates.append(max(0.0, self.timeout - self.elapsed))
        return min(estimates) if estimates else None


class Driver:
    """One sweep session over `study`; `run()` returns the tally when the budget is spent."""

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
        self.n_trials = spec.budget.n_trials
        if spec.sampler.name == "grid" and self.n_trials is not None:
            self.n_trials = min(self.n_trials, grid_size(spec))
        self.max_failed = spec.budget.max_failed if spec.budget.max_failed is not None else (self.n_trials or 100)
        self.monitor = monitor
        self.entry = entry
        self.run_dir = Path(run_dir).resolve()
        self.writer = ResultsWriter(run_dir)
        self.mates = Mates(study, spec, self.run_dir)
        self.topic = f"dqn-sweep-{uuid.uuid4().hex[:12]}"
        self.inbox: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.runs: dict[int, TrialRun] = {}
        self.asked: set[int] = set()  # every trial this session asked: re-queued if interrupted
        self.pending: deque[Part] = deque()  # asked, not yet in a task (a trial's other seeds)
        self.retrying: deque[Task] = deque()  # lost on a dead worker, to submit again as they were
        self.futures: dict[Any, Task] = {}
        self.tally = Tally(self.n_trials, spec.budget.timeout)
        self.stopping: str | None = None
        self.sampler_seed: int | None = None

    # -- the loop -----------------------------------------------------------------------
    def run(self) -> Tally:
        self.start()
        self.client.subscribe_topic(self.topic, lambda event: self.inbox.put(("event", event[1])))
        try:
            while True:
                self.fill()
                if not self.futures:
                    break
                self.wait_and_handle()
        except KeyboardInterrupt:
            self.interrupt()
            raise
        finally:
            self.client.unsubscribe_topic(self.topic)
            self.writer.write_trials(self.study)
        return self.tally

    def start(self) -> None:
        """Re-queue what a dead driver left RUNNING, remove checkpoint folders nothing can resume,
        seed this session's sampler (`search.session_seed`), count earlier sessions' results."""
        for trial in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            again = lifecycle.requeue(self.study, trial, lifecycle.DRIVER_LOST)
            self.say(f"trial {trial.number} was left RUNNING by an earlier driver: FAIL (driver lost)"
                     + (", re-queued" if again else ""))
        for folder in lifecycle.remove_orphaned_folders(self.run_dir, self.study):
            self.say(f"removed {folder.relative_to(self.run_dir)}: no trial left to resume it")
        self.sampler_seed = search.session_seed(self.study, self.spec.sampler.seed)
        self.study.sampler = search.make_sampler(self.spec, self.sampler_seed)
        earlier = self.study.get_trials(deepcopy=False, states=FINISHED)
        self.tally.finished_before = len(earlier)
        complete = [t for t in earlier if t.state == TrialState.COMPLETE]
        if complete:
            best = max(complete, key=lambda t: t.value)
            self.tally.best_value, self.tally.best_trial = best.value, best.number

    def fill(self) -> None:
        """Submit tasks until `parallel` are in flight or the budget allows no more."""
        while len(self.futures) < self.parallel:
            task = self.next_task()
            if task is None:
                break
            self.submit(task)
        self.show()

    def submit(self, task: Task) -> None:
        for number, _ in task:
            self.runs[number].packed_with.update(other for other, _ in task if other != number)
        future = self.client.submit(run_seeds, self.payload(task), pure=False, **self.task_resources())
        self.futures[future] = task
        future.add_done_callback(lambda done: self.inbox.put(("done", done)))

    def next_task(self) -> Task | None:
        """A lost task to rerun, else an asked part (or a newly asked trial) with up to
        `pack - 1` mates asked to fit it: every trial asked here starts now."""
        if self.retrying:
            return self.retrying.popleft()
        if not self.pending:
            first = self.ask_first()
            if first is None:
                return None
            self.pending.extend((first.number, unit) for unit in first.units)
        task = [self.pending.popleft()]
        lead = self.runs[task[0][0]]
        if self.spec.pack == 1 or not self.mates.wanted(lead.trial):
            return tuple(task)
        while len(task) < self.spec.pack and self.can_ask() and self.mates.prepare(lead.trial):
            mate = self.ask()
            if mate is None:
                break
            part = (mate.number, mate.units[0])
            if shape(mate.configs[mate.seeds[0]]) != shape(lead.configs[lead.seeds[0]]):
                self.pending.append(part)  # another driver took the queued mate: this one leads the next task
                break
            task.append(part)
        return tuple(task)

    def wait_and_handle(self) -> None:
        """Block until an event or a completion arrives, then handle everything that is in.

        Completions come through the same queue as events (a done-callback per future), so
        one blocking wait serves both: refill happens the moment any run ends.
        """
        kind, message = self.inbox.get()
        while True:
            if kind == "event":
                self.on_event(message)
            elif message in self.futures:
                self.on_done(message)
            try:
                kind, message = self.inbox.get_nowait()
            except queue.Empty:
                return

    # -- asking ---------------------------------------------------------------------------
    def can_ask(self) -> bool:
        if self.stopping:
            return False
        if self.spec.budget.timeout is not None and self.tally.elapsed >= self.spec.budget.timeout:
            self.stopping = f"timeout of {self.spec.budget.timeout:g} s reached"
        elif self.tally.failed > self.max_failed:
            self.stopping = f"{self.tally.failed} trials failed (budget.max_failed = {self.max_failed})"
        elif self.n_trials is not None and self.tally.finished + self.active() >= self.n_trials:
            return False
        if self.stopping:
            self.say(f"no new trials: {self.stopping}")
            return False
        return True

    def active(self) -> int:
        """Trials of this session that will count as finished (failed ones do not)."""
        return sum(run.fail_reason is None for run in self.runs.values())

    def ask_first(self) -> TrialRun | None:
        """The trial leading a new task (asking again past trials whose params fail)."""
        while self.can_ask():
            run = self.ask()
            if run is not None:
                return run
        return None

    def ask(self) -> TrialRun | None:
        """Ask Optuna for a trial and prepare its runs; None when its params cannot be used (the
        trial is FAIL with the reason)."""
        with sigint_deferred():  # a Ctrl-C must find every trial this session asked in `asked`
            trial = self.study.ask()
            self.asked.add(trial.number)
        trial.set_user_attr("finished_when_asked", self.tally.finished)
        trial.set_user_attr("sampler_seed", self.sampler_seed)
        try:
            params = search.suggest(trial, self.spec)
        except (ValueError, TypeError) as error:
            trial.set_user_attr("fail_reason", f"suggest: {error}")
            search.tell(self.study, trial, state=TrialState.FAIL)
            self.tally.failed += 1
            return None
        configs = search.seed_configs(self.spec, params)
        seeds = [config["seed"] for config in configs]
        trial.set_user_attr("seeds", seeds)
        stop = Event(self.stop_event_name(trial.number), client=self.client)
        units = [tuple(seeds)] if self.spec.population else [(seed,) for seed in seeds]
        run = TrialRun(trial, seeds, units, stop, dict(zip(seeds, configs)), lifecycle.checkpoint_key(trial))
        self.runs[trial.number] = run
        self.say(f"trial {trial.number} started: {format_params(params)}")
        return run

    def payload(self, task: Task) -> dict[str, Any]:
        resources = self.spec.resources
        keys = [self.runs[number].checkpoint_key for number, _ in task]
        return {
            "configs": [self.runs[number].configs[seed] for number, unit in task for seed in unit],
            "parts": [[number, list(unit)] for number, unit in task],
            "topic": self.topic,
            "stop_events": {str(number): self.stop_event_name(number) for number, _ in task},
            "interrupt_event": self.interrupt_event_name,
            "gpus": resources.gpus,
            "cpu_threads": resources.cpu_threads,
            "time_limit": resources.time_limit,
            "env": list(resources.env),
            "processes": resources.process_limits(),
            "entry": self.entry,
            "run_dir": str(self.run_dir),
            "checkpoint": lifecycle.checkpoint_path(keys, task[0][1]),
        }

    @property
    def interrupt_event_name(self) -> str:
        return f"{self.topic}-interrupted"

    def stop_event_name(self, number: int) -> str:
        return f"{self.topic}-stop-{number}"

    def task_resources(self) -> dict[str, Any]:
        return {"resources": {"GPU": self.spec.resources.gpus}} if self.spec.resources.gpus else {}

    # -- events and pruning -------------------------------------------------------------------
    def on_event(self, message: dict[str, Any]) -> None:
        run = self.runs.get(message.get("trial"))
        if run is None:
            return
        if message.get("event") == "started":
            unit = tuple(message["seeds"])
            run.starts[unit] = run.starts.get(unit, 0) + 1
        elif message.get("event") == "eval" and run.on_eval(message, self.spec.objective):
            self.stop_runs(run)
            self.say(f"trial {run.number} pruned at step {message['step']}")

    def stop_runs(self, run: TrialRun) -> None:
        """Stop the trial's members in flight and drop its parts not yet in a task. A lost task
        waiting to rerun keeps them (its checkpoint holds all members); they stop at once."""
        run.stop.set()
        run.dropped.update(unit for n, unit in self.pending if n == run.number)
        self.pending = deque(part for part in self.pending if part[0] != run.number)

    # -- completions ------------------------------------------------------------------------
    def on_done(self, future: Any) -> None:
        task = self.futures.pop(future)
        outcome = task_outcome(future)
        if outcome["status"] == "lost" and self.retry(task, outcome["reason"]):
            return
        start = 0
        for number, unit in task:
            results = outcome.get("results")
            part = {**outcome, "results": results[start:start + len(unit)] if results else None}
            start += len(unit)
            run = self.runs[number]
            if run.settle(unit, part):
                self.stop_runs(run)
            if run.settled:
                self.finish(run)

    def retry(self, task: Task, reason: str) -> bool:
        """Submit a task whose worker died again, unless all its trials are done or one of
        them is out of retries."""
        live = [(self.runs[number], unit) for number, unit in task if self.runs[number].live]
        max_retries = self.spec.budget.max_retries
        if not live or any(run.retries.get(unit, 0) >= max_retries for run, unit in live):
            return False
        for run, unit in live:
            run.retries[unit] = run.retries.get(unit, 0) + 1
        self.retrying.append(task)
        attempt = max(run.retries[unit] for run, unit in live)
        self.say(f"{task_label(task)}: {first_line(reason)}; retry {attempt} of {max_retries}")
        return True

    def finish(self, run: TrialRun) -> None:
        """Tell Optuna how the trial ended, release its stop event and checkpoint folders, and
        append its evaluations to the tables."""
        trial, results = run.trial, run.results()
        run.record_attrs()
        stopped = run.pruned
        state, value = run.verdict(self.spec.objective)
        if state == TrialState.FAIL:
            trial.set_user_attr("fail_reason", run.fail_reason)
            search.tell(self.study, trial, state=TrialState.FAIL)
            self.tally.failed += 1
            self.say(f"trial {trial.number} FAILED: {first_line(run.fail_reason or '')}")
        elif state == TrialState.PRUNED:
            search.tell(self.study, trial, state=TrialState.PRUNED)
            self.tally.pruned += 1
        else:
            search.tell(self.study, trial, value)
            self.tally.completed += 1
            if self.tally.best_value is None or value > self.tally.best_value:
                self.tally.best_value, self.tally.best_trial = value, trial.number
            late = " (its members trained to the end before the stop reached them)" if stopped else ""
            self.say(f"trial {trial.number} finished: {value:.2f}{late}")
        self.tally.trial_seconds.append(time.monotonic() - run.started)
        self.writer.add_trial(self.study, trial.number, {
            seed: {"evals": (results.get(seed) or {}).get("evals") or run.evals.get(seed, []),
                   "episodes": (results.get(seed) or {}).get("episodes", [])}
            for seed in run.seeds
        })
        self.release(run)  # after the tables: a scheduler hiccup here must not lose the trial's rows
        del self.runs[trial.number]
        self.show()

    def release(self, run: TrialRun) -> None:
        """Free what the ended trial held outside this process: its stop event on the scheduler
        (`clear` deletes an event nobody waits on) and its checkpoint folders (nothing resumes
        them: it was not re-queued)."""
        with contextlib.suppress(OSError, TimeoutError):  # best effort: the event is tiny
            run.stop.clear()
        lifecycle.remove_folders_of(self.run_dir, [run.checkpoint_key])

    # -- lifecycle --------------------------------------------------------------------------
    def interrupt(self) -> None:
        """Ctrl-C: stop the runs, mark every trial this session asked that is still RUNNING
        FAIL ("interrupted") and re-queue it (also one re-queued before: interrupts are not the
        trial's fault). Stop events stay set: they are how the workers' children learn to stop."""
        # First: a worker that outlives this driver (an external cluster) keeps the checkpoints
        # of the runs it stops, for the re-queued trials to resume.
        with contextlib.suppress(OSError, TimeoutError):
            Event(self.interrupt_event_name, client=self.client).set()
        for future in list(self.futures):
            future.cancel()
        for run in self.runs.values():
            run.stop.set()
        self.runs.clear()
        for trial in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if trial.number in self.asked:
                lifecycle.requeue(self.study, trial, lifecycle.INTERRUPTED)
        self.say("interrupted: running trials marked FAIL and re-queued; run the same command to resume")

    def show(self) -> None:
        self.tally.running = len(self.runs)
        if self.monitor:
            self.monitor.update(self.tally)

    def say(self, line: str) -> None:
        if self.monitor:
            self.monitor.log(line)
        self.show()


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


def task_label(task: Task) -> str:
    return ", ".join(f"trial {number} {seeds_label(unit)}" for number, unit in task)


def task_outcome(future: Any) -> dict[str, Any]:
    """A finished future as an outcome dict: a task error is a failure, a dead worker "lost"."""
    if future.status == "cancelled":
        return {"status": "failed", "reason": "cancelled", "results": None}
    error = future.exception() if future.status == "error" else None
    if isinstance(error, KilledWorker):
        return {"status": "lost", "reason": f"worker lost ({getattr(error.last_worker, 'address', 'unknown')})", "results": None}
    if error is not None:
        return {"status": "failed", "reason": f"{type(error).__name__}: {error}", "results": None}
    return future.result()


def format_params(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


def first_line(text: str) -> str:
    return text.splitlines()[0] if text else text
