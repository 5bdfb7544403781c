"""The sweep driver: Optuna ask/tell in the client, runs of trials in flight on Dask.

Asks a trial, turns it into one trainer config per seed and groups the seeds into tasks (all
seeds as one population, trained in one compiled graph, unless the study sets `population:
false`: then one task per seed). With `pack: N`, up to N trials that agree on every
shape-changing trainer field share one task, each trial its own members. Keeps `parallel`
tasks in flight and refills on every completion (no batch barriers; completions and eval
events share one queue, which `distributed.as_completed` cannot offer without polling). Eval
events stream back; the across-seed value at each evaluation step is reported, and a trial the
pruner rejects is told to stop through its own named `distributed.Event` (only its members
stop). When all seeds of a trial are back it is told COMPLETE (aggregated objective), PRUNED,
or FAIL with the reason in user attr `fail_reason`. A task whose worker died is submitted
again, up to `budget.max_retries` times; when the workers see the run folder it resumes from
its checkpoint there (`checkpoint_path`).
"""

from __future__ import annotations

import dataclasses
import queue
import time
import uuid
from collections import deque
from pathlib import Path
from typing import Any, Protocol

import optuna
from distributed import Client, Event, KilledWorker
from optuna.trial import TrialState

from dqn_tf.config import POPULATION_SHARED_FIELDS
from sweeps import search
from sweeps.results import ResultsWriter
from sweeps.spec import StudySpec, grid_size
from sweeps.tasks import ENTRY, member_failure, run_seeds

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


Seeds = tuple[int, ...]  # the seeds of one trial that one task trains
Part = tuple[int, Seeds]  # (trial number, seeds): one trial's members in a task
Task = tuple[Part, ...]  # one Dask task: its parts' members train as one population


@dataclasses.dataclass
class TrialRun:
    """Driver-side state of one trial while its parts (groups of seeds) are in flight."""

    trial: optuna.Trial
    seeds: list[int]
    units: list[Seeds]
    stop: Event
    configs: dict[int, dict[str, Any]]
    checkpoint_key: int
    retries: dict[Seeds, int] = dataclasses.field(default_factory=dict)
    starts: dict[Seeds, int] = dataclasses.field(default_factory=dict)
    started: float = dataclasses.field(default_factory=time.monotonic)
    evals: dict[int, list[dict[str, Any]]] = dataclasses.field(default_factory=dict)
    outcomes: dict[Seeds, dict[str, Any]] = dataclasses.field(default_factory=dict)
    dropped: set[Seeds] = dataclasses.field(default_factory=set)
    reported: set[int] = dataclasses.field(default_factory=set)
    packed_with: set[int] = dataclasses.field(default_factory=set)
    pruned: bool = False
    fail_reason: str | None = None

    @property
    def settled(self) -> bool:
        return len(self.outcomes) + len(self.dropped) == len(self.units)

    def results(self) -> dict[int, dict[str, Any]]:
        """Each seed's TrainResult dict, for the runs that returned one."""
        return {seed: result for unit, outcome in self.outcomes.items()
                for seed, result in zip(unit, outcome.get("results") or [])}


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
        self.topic = f"dqn-sweep-{uuid.uuid4().hex[:12]}"
        self.inbox: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.runs: dict[int, TrialRun] = {}
        self.pending: deque[Part] = deque()  # asked, not yet in a task
        self.retrying: deque[Task] = deque()  # lost on a dead worker, to submit again as they were
        self.futures: dict[Any, Task] = {}
        self.tally = Tally(self.n_trials, spec.budget.timeout)
        self.stopping: str | None = None
        self.earlier: set[int] = set()

    # -- the loop -----------------------------------------------------------------------
    def run(self) -> Tally:
        self.recover_lost_trials()
        earlier = self.study.get_trials(deepcopy=False)
        self.earlier = {t.number for t in earlier}
        self.tally.finished_before = sum(t.state in FINISHED for t in earlier)
        complete = [t for t in earlier if t.state == TrialState.COMPLETE]
        if complete:
            best = max(complete, key=lambda t: t.value)
            self.tally.best_value, self.tally.best_trial = best.value, best.number
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

    def fill(self) -> None:
        """Submit tasks until `parallel` are in flight or the budget allows no more."""
        while len(self.futures) < self.parallel:
            task = self.next_task()
            if task is None:
                return
            for number, _ in task:
                self.runs[number].packed_with.update(other for other, _ in task if other != number)
            future = self.client.submit(run_seeds, self.payload(task), pure=False, **self.task_resources())
            self.futures[future] = task
            future.add_done_callback(lambda done: self.inbox.put(("done", done)))
        self.show()

    def next_task(self) -> Task | None:
        """A lost task to rerun, else the next asked part packed with up to `pack - 1` parts of
        same-shaped trials (asking for more while the budget allows; others wait their turn)."""
        if self.retrying:
            return self.retrying.popleft()
        if not self.pending and not self.ask():
            return None
        task = [self.pending.popleft()]
        shape, asks_left = self.shape(task[0]), self.spec.pack - 1
        while len(task) < self.spec.pack:
            match = next((part for part in self.pending if self.shape(part) == shape), None)
            if match is not None:
                self.pending.remove(match)
                task.append(match)
            elif asks_left == 0 or not self.ask():
                break
            else:
                asks_left -= 1
        return tuple(task)

    def shape(self, part: Part) -> tuple[str, ...]:
        """What trials must agree on to train in one population (see `check_population`)."""
        config = self.runs[part[0]].configs[part[1][0]]
        return tuple(repr(config.get(field)) for field in POPULATION_SHARED_FIELDS)

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
        elif self.n_trials is not None and self.tally.finished + len(self.active()) >= self.n_trials:
            return False
        if self.stopping:
            self.say(f"no new trials: {self.stopping}")
            return False
        return True

    def active(self) -> list[TrialRun]:
        return [run for run in self.runs.values() if run.fail_reason is None]

    def ask(self) -> bool:
        """Ask Optuna for the next trial and queue its runs."""
        if not self.can_ask():
            return False
        trial = self.study.ask()
        try:
            params = search.suggest(trial, self.spec)
        except (ValueError, TypeError) as error:
            trial.set_user_attr("fail_reason", f"suggest: {error}")
            search.tell(self.study, trial, state=TrialState.FAIL)
            self.tally.failed += 1
            return self.ask()
        configs = search.seed_configs(self.spec, params)
        seeds = [config["seed"] for config in configs]
        trial.set_user_attr("seeds", seeds)
        stop = Event(self.stop_event_name(trial.number), client=self.client)
        # A re-queued trial resumes the checkpoints its lost original left behind.
        key = trial.user_attrs.get("requeued_from", trial.number)
        units = [tuple(seeds)] if self.spec.population else [(seed,) for seed in seeds]
        run = TrialRun(trial, seeds, units, stop, dict(zip(seeds, configs)), key)
        self.runs[trial.number] = run
        self.pending.extend((trial.number, unit) for unit in units)
        self.say(f"trial {trial.number} started: {format_params(params)}")
        return True

    def payload(self, task: Task) -> dict[str, Any]:
        resources = self.spec.resources
        return {
            "configs": [self.runs[number].configs[seed] for number, unit in task for seed in unit],
            "parts": [[number, list(unit)] for number, unit in task],
            "topic": self.topic,
            "stop_events": {str(number): self.stop_event_name(number) for number, _ in task},
            "gpus": resources.gpus,
            "cpu_threads": resources.cpu_threads,
            "time_limit": resources.time_limit,
            "entry": self.entry,
            "run_dir": str(self.run_dir),
            "checkpoint": checkpoint_path([self.runs[number].checkpoint_key for number, _ in task], task[0][1]),
        }

    def stop_event_name(self, number: int) -> str:
        return f"{self.topic}-stop-{number}"

    def task_resources(self) -> dict[str, Any]:
        return {"resources": {"GPU": self.spec.resources.gpus}} if self.spec.resources.gpus else {}

    # -- events and pruning -------------------------------------------------------------------
    def on_event(self, message: dict[str, Any]) -> None:
        run = self.runs.get(message.get("trial"))
        if run is not None and message.get("event") == "started":
            unit = tuple(message["seeds"])
            run.starts[unit] = run.starts.get(unit, 0) + 1
        if run is None or message.get("event") != "eval" or run.pruned or run.fail_reason:
            return
        curve = run.evals.setdefault(message["seed"], [])
        if curve and message["step"] <= curve[-1]["step"]:
            return  # a rerun that could not resume repeats evaluations already reported
        curve.append(message)
        self.report(run, int(message["step"]))

    def report(self, run: TrialRun, step: int) -> None:
        """Once every seed has evaluated at `step`, report the across-seed value; maybe prune."""
        if step in run.reported:
            return
        per_seed = []
        for seed in run.seeds:
            curve = [e for e in run.evals.get(seed, []) if e["step"] <= step]
            if not curve or curve[-1]["step"] != step:
                return
            per_seed.append(search.curve_metric(curve, self.spec.objective.metric, self.spec.objective.k))
        run.reported.add(step)
        run.trial.report(search.aggregate(per_seed, self.spec.objective.seed_aggregate), step)
        if run.trial.should_prune():
            run.pruned = True
            self.stop_runs(run)
            self.say(f"trial {run.trial.number} pruned at step {step}")

    def stop_runs(self, run: TrialRun) -> None:
        """Stop the trial's members in flight and drop its parts not yet in a task. A lost task
        waiting to rerun keeps them (its checkpoint holds all members); they stop at once."""
        run.stop.set()
        number = run.trial.number
        run.dropped.update(unit for n, unit in self.pending if n == number)
        self.pending = deque(part for part in self.pending if part[0] != number)

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
            self.settle(self.runs[number], unit, part)

    def settle(self, run: TrialRun, unit: Seeds, outcome: dict[str, Any]) -> None:
        """Record one part's outcome; a failed part fails (and stops) its trial."""
        if outcome["status"] == "lost" and not run.pruned:
            outcome["reason"] += f" (after {run.retries.get(unit, 0)} retries)"
        run.outcomes[unit] = outcome
        if run.fail_reason is None and not run.pruned:
            run.fail_reason = failure(unit, outcome)
            if run.fail_reason is not None:
                self.stop_runs(run)
        if run.settled:
            self.finish(run)

    def retry(self, task: Task, reason: str) -> bool:
        """Submit a task whose worker died again, unless all its trials are done or one of
        them is out of retries."""
        parts = [(self.runs[number], unit) for number, unit in task]
        live = [(run, unit) for run, unit in parts if not run.pruned and run.fail_reason is None]
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
        trial, results = run.trial, run.results()
        set_run_attrs(trial, run.outcomes)
        trial.set_user_attr("packed_with", sorted(run.packed_with))
        # Our resubmissions, or more starts than that where the scheduler reran a task itself.
        trial.set_user_attr("retries", sum(max(run.retries.get(u, 0), run.starts.get(u, 1) - 1) for u in run.units))
        if run.fail_reason is None and not run.pruned:
            try:
                value = self.objective(results)
            except ValueError as error:
                run.fail_reason = f"objective: {error}"
        if run.fail_reason is not None:
            trial.set_user_attr("fail_reason", run.fail_reason)
            search.tell(self.study, trial, state=TrialState.FAIL)
            self.tally.failed += 1
            self.say(f"trial {trial.number} FAILED: {first_line(run.fail_reason)}")
        elif run.pruned:
            search.tell(self.study, trial, state=TrialState.PRUNED)
            self.tally.pruned += 1
        else:
            search.tell(self.study, trial, value)
            self.tally.completed += 1
            if self.tally.best_value is None or value > self.tally.best_value:
                self.tally.best_value, self.tally.best_trial = value, trial.number
            self.say(f"trial {trial.number} finished: {value:.2f}")
        self.tally.trial_seconds.append(time.monotonic() - run.started)
        self.writer.add_trial(self.study, trial.number, {
            seed: {"evals": (results.get(seed) or {}).get("evals") or run.evals.get(seed, []),
                   "episodes": (results.get(seed) or {}).get("episodes", [])}
            for seed in run.seeds
        })
        del self.runs[trial.number]
        self.show()

    def objective(self, results: dict[int, dict[str, Any]]) -> float:
        metric, k = self.spec.objective.metric, self.spec.objective.k
        per_seed = [search.curve_metric(r["evals"], metric, k) for r in results.values()]
        return search.aggregate(per_seed, self.spec.objective.seed_aggregate)

    # -- lifecycle --------------------------------------------------------------------------
    def recover_lost_trials(self) -> None:
        """Trials a dead driver left RUNNING are FAIL ("driver lost") and asked again once."""
        for trial in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            optuna.Trial(self.study, trial._trial_id).set_user_attr("fail_reason", "driver lost")
            search.tell(self.study, trial.number, state=TrialState.FAIL)
            if "requeued_from" not in trial.user_attrs:
                self.study.enqueue_trial(trial.params, user_attrs={"requeued_from": trial.number})
            self.say(f"trial {trial.number} was left RUNNING by an earlier driver: FAIL (driver lost), re-queued")

    def interrupt(self) -> None:
        """Ctrl-C: stop the runs, mark their trials FAIL ("interrupted"), re-queue them."""
        for future in list(self.futures):
            future.cancel()
        for run in self.runs.values():
            run.stop.set()
        self.runs.clear()
        # Every RUNNING trial that is not older than this session is ours, including one that
        # Ctrl-C caught between `ask` and its runs being submitted.
        for trial in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if trial.number in self.earlier:
                continue
            optuna.Trial(self.study, trial._trial_id).set_user_attr("fail_reason", "interrupted")
            search.tell(self.study, trial.number, state=TrialState.FAIL)
            if trial.params:
                self.study.enqueue_trial(trial.params, user_attrs={"requeued_from": trial.number})
        self.say("interrupted: running trials marked FAIL and re-queued; run the same command to resume")

    def show(self) -> None:
        self.tally.running = len(self.runs)
        if self.monitor:
            self.monitor.update(self.tally)

    def say(self, line: str) -> None:
        if self.monitor:
            self.monitor.log(line)
        self.show()


def checkpoint_path(keys: list[int], unit: Seeds) -> str:
    """Where a task checkpoints, relative to the run folder (kept only while it runs)."""
    trials = "+".join(f"trial-{key}" for key in keys)
    return f"checkpoints/{trials}/{seeds_label(unit).replace(' ', '-').replace(',', '-')}"


def seeds_label(unit: Seeds) -> str:
    return f"seed {unit[0]}" if len(unit) == 1 else "seeds " + ",".join(map(str, unit))


def task_label(task: Task) -> str:
    return ", ".join(f"trial {number} {seeds_label(unit)}" for number, unit in task)


def failure(unit: Seeds, outcome: dict[str, Any]) -> str | None:
    """Why this run fails its (not pruned) trial: the task failed, or one member's result."""
    if outcome["status"] != "ok":
        return f"{seeds_label(unit)}: {outcome['reason']}"
    for seed, result in zip(unit, outcome["results"]):
        if (reason := member_failure(result)) is not None:
            return f"seed {seed}: {reason}"
    return None


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


def set_run_attrs(trial: optuna.Trial, outcomes: dict[Seeds, dict[str, Any]]) -> None:
    """Totals over the trial's runs, stored on the trial (and thus in trials.parquet).

    Seconds add up over runs (a population's members share theirs); env steps over seeds, and
    steps/s is the trial's env steps over its training seconds.
    """
    results = [r for o in outcomes.values() for r in o.get("results") or []]
    train_seconds = sum(max(r["wall_seconds"] for r in o["results"]) for o in outcomes.values() if o.get("results"))
    env_steps = int(sum(r["env_steps"] for r in results))
    trial.set_user_attr("env_steps", env_steps)
    trial.set_user_attr("wall_seconds", float(sum(o.get("wall_seconds") or 0 for o in outcomes.values())))
    trial.set_user_attr("train_seconds", float(train_seconds))
    trial.set_user_attr("steps_per_second", env_steps / train_seconds if train_seconds else None)
    trial.set_user_attr("worker", ",".join(sorted({o["worker"] for o in outcomes.values() if o.get("worker")})))
    starts = [o["startup_seconds"] for o in outcomes.values() if o.get("startup_seconds")]
    trial.set_user_attr("startup_seconds", float(sum(starts) / len(starts)) if starts else None)
    resumed = [r["resumed_from_step"] for r in results if r.get("resumed_from_step") is not None]
    trial.set_user_attr("resumed_from_step", max(resumed) if resumed else None)


def format_params(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


def first_line(text: str) -> str:
    return text.splitlines()[0] if text else text
