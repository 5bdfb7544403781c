"""The held-out phase (docs/heldout.md): once the tuning budget is spent (`dqn-sweep run`), or on
a finished run folder (`dqn-sweep heldout`), the top-k trials by tuning objective train again on
held-out seeds, beside the baseline on the same seeds.

Each config's missing seeds train as one population in one Dask task, or a few when one config
would keep a worker busy while others idle (`shared_out`) (`train_task`: the same
warm processes, time limits, failure handling and checkpoints as trials; a task whose worker
died runs again, up to `budget.max_retries` times). A run that trained to the end goes to the
`heldout/` table at once (the writer's log: a killed driver loses none), so a rerun trains only
the runs the table lacks; a Ctrl-C keeps the tasks' checkpoints for it. The rules (seeds,
baseline) are `sweeps.study.heldout`'s, the figures `sweeps.study.scores`'; they go on the
study as user attrs, with the phase's cost.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import math
import time
import uuid
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
from distributed import Client, Event, as_completed

from sweeps.driver import dispatch
from sweeps.driver.trial import member_failure, seeds_label
from sweeps.store.checkpoints import heldout_checkpoint_path, remove_heldout_folders
from sweeps.store.reader import HELDOUT_FIGURES, read_dataset, trials_frame
from sweeps.store.writer import ResultsWriter
from sweeps.study import scores
from sweeps.study.heldout import (
    BASELINE,
    BASELINE_ATTR,
    FIGURES_ATTR,
    SEEDS_ATTR,
    SESSION_ATTR,
    TRIALS_ATTR,
    check_tuning_seeds,
    heldout_seeds,
    label,
    resolve_baseline,
)
from sweeps.study.objective import curve_metric
from sweeps.study.ranking import top_k
from sweeps.study.space import params_to_config, with_params
from sweeps.study.spec import Heldout, StudySpec
from sweeps.worker.outcome import Outcome
from sweeps.worker.supervise import ENTRY
from sweeps.worker.task import train_task

BASELINE_PART = -1  # the baseline's part number in a task (a trial's is its number)


@dataclasses.dataclass
class Run:
    """One held-out task: a config's missing seeds, trained as one population."""

    config: str  # "trial 7" or "baseline"
    trial: int | None
    fields: dict[str, Any]  # its trainer config, without the seed
    seeds: tuple[int, ...]
    retries: int = 0

    @property
    def part(self) -> int:
        return BASELINE_PART if self.trial is None else self.trial

    @property
    def checkpoint(self) -> str:
        return heldout_checkpoint_path(self.config, self.seeds)


@dataclasses.dataclass
class Cost:
    """What one session of the phase trained and what it took."""

    runs: int = 0  # seeds trained to the end
    failed: int = 0
    env_steps: int = 0
    train_seconds: float = 0.0  # over tasks (a population's members share theirs)
    started: float = dataclasses.field(default_factory=time.monotonic)

    def record(self) -> dict[str, Any]:
        return {"runs": self.runs, "failed": self.failed, "env_steps": self.env_steps,
                "train_seconds": round(self.train_seconds, 3), "wall_seconds": round(time.monotonic() - self.started, 3)}

    def line(self) -> str:
        cost = self.record()
        return (f"held-out phase: {cost['runs']} runs trained, {cost['failed']} failed; {cost['env_steps']:,} env "
                f"steps, {cost['train_seconds']:.1f} s of training, {cost['wall_seconds']:.1f} s wall")


def check(spec: StudySpec, study: optuna.Study, settings: Heldout | None) -> None:
    """Before any work: raise ValueError when the study's tuning seeds are held-out seeds of an
    earlier phase, or `settings` name another baseline than the study's held-out scores compare to."""
    check_tuning_seeds(spec, study.user_attrs.get(SEEDS_ATTR, []))
    if settings is not None:
        resolve_baseline(spec, settings.baseline, study.user_attrs.get(BASELINE_ATTR))


def plan(spec: StudySpec, study: optuna.Study, settings: Heldout, table: pd.DataFrame) -> list[Run]:
    """Record the phase's seeds, trials and baseline on the study; the runs its table lacks,
    longest first (the baseline, then by the trial's training seconds per seed)."""
    attrs = study.user_attrs
    frozen = {trial.number: trial for trial in study.get_trials(deepcopy=False)}
    tuned_on = set(spec.seed_list) | {seed for trial in frozen.values() for seed in trial.user_attrs.get("seeds") or ()}
    seeds = heldout_seeds(tuned_on, attrs.get(SEEDS_ATTR, []), settings.seeds)
    chosen = top_k(trials_frame(study), settings.top_k)
    numbers = chosen + [n for n in attrs.get(TRIALS_ATTR, []) if n not in chosen]
    baseline = resolve_baseline(spec, settings.baseline, attrs.get(BASELINE_ATTR))
    study.set_user_attr(SEEDS_ATTR, seeds)
    study.set_user_attr(TRIALS_ATTR, numbers)
    configs = [(label(n), n, with_params(spec.base_config(), params_to_config(frozen[n].params, spec)))
               for n in numbers]
    if baseline is not None:
        study.set_user_attr(BASELINE_ATTR, baseline)
        configs.insert(0, (BASELINE, None, baseline["config"]))
    done: dict[str, set[int]] = {}
    for config, seed in zip(table["config"], table["seed"]):
        done.setdefault(str(config), set()).add(int(seed))
    runs = [Run(config, trial, fields, tuple(s for s in seeds if s not in done.get(config, set())))
            for config, trial, fields in configs]
    runs = [run for run in runs if run.seeds]

    def seconds(run: Run) -> float:  # a trial's training seconds per seed, times the seeds to train
        if run.trial is None:
            return math.inf  # the baseline's cost is unknown: start it first
        attrs = frozen[run.trial].user_attrs
        return (attrs.get("train_seconds") or 0.0) / max(1, len(attrs.get("seeds") or ())) * len(run.seeds)

    return sorted(shared_out(runs, seconds, spec.parallel), key=seconds, reverse=True)  # longest first


def shared_out(runs: list[Run], seconds: Callable[[Run], float], slots: int) -> list[Run]:
    """Each run split into seed groups of at most an even share of the phase's seconds over
    `slots`: one costly config (a 256x256 net among 64x64 ones) would otherwise keep one worker
    busy while the others idle. A group is a population of its own (members are their solo runs)."""
    costs = [seconds(run) for run in runs]
    share = sum(cost for cost in costs if math.isfinite(cost)) / slots if slots > 1 else 0.0
    if not share:
        return runs
    split = []
    for run, cost in zip(runs, costs):
        groups = min(len(run.seeds), max(1, math.ceil(cost / share))) if math.isfinite(cost) else 1
        size, extra = divmod(len(run.seeds), groups)
        starts = [i * size + min(i, extra) for i in range(groups + 1)]
        split += [dataclasses.replace(run, seeds=run.seeds[a:b]) for a, b in itertools.pairwise(starts)]
    return split


def run_heldout(spec: StudySpec, study: optuna.Study, client: Client, run_dir: Path, *, settings: Heldout,
                echo: Callable[[str], None] = print, entry: str = ENTRY) -> Cost | None:
    """Run (or finish, or extend) the held-out phase of `study`; returns its cost, or None when
    no trial is COMPLETE. Raises ValueError (before any work) when `settings` names another
    baseline than the study's held-out scores compare to."""
    if not top_k(trials_frame(study), 1):
        echo("held-out phase: no COMPLETE trial to retrain")
        return None
    writer = ResultsWriter(run_dir, study)
    phase = None
    try:
        writer.flush()  # what a killed session logged is in the table now
        runs = plan(spec, study, settings, read_dataset(run_dir, "heldout"))
        remove_heldout_folders(run_dir, keep=[run.checkpoint for run in runs])  # nothing resumes the others
        seeds = study.user_attrs[SEEDS_ATTR]
        echo(f"held-out phase: {len(study.user_attrs[TRIALS_ATTR])} configs by tuning objective"
             + (" and the baseline" if BASELINE_ATTR in study.user_attrs else "")
             + f" on held-out {seeds_label(tuple(seeds))}: {sum(len(r.seeds) for r in runs)} runs to train")
        phase = Phase(spec, client, run_dir, writer, echo, entry)
        phase.go(runs)
        remove_heldout_folders(run_dir)  # every run ended: nothing to resume
    finally:
        try:
            if phase is not None:
                record(spec, study, run_dir, writer, phase)
                echo(phase.cost.line())
        finally:
            writer.close()
    return phase.cost


def record(spec: StudySpec, study: optuna.Study, run_dir: Path, writer: ResultsWriter, phase: Phase) -> None:
    """Each config's figures from the held-out table (and why its runs failed) and this
    session's cost, as study user attrs; the trials table is rebuilt with them."""
    writer.flush()
    figures = scores.figures(read_dataset(run_dir, "heldout"), spec.objective)
    for row in figures.to_dict("records"):
        values = {key: plain(row.get(key)) for key in HELDOUT_FIGURES if key != "fail_reason"}
        study.set_user_attr(FIGURES_ATTR + row["config"], {**values, "fail_reason": phase.failures.get(row["config"])})
    for config in set(phase.failures) - set(figures["config"]):
        study.set_user_attr(FIGURES_ATTR + config, {"fail_reason": phase.failures[config]})
    study.set_user_attr(SESSION_ATTR + phase.topic.rsplit("-", 1)[-1], phase.cost.record())
    writer.changed()


def plain(value: Any) -> Any:
    """A figure for JSON: numpy scalars as Python ones, NaN as None."""
    value = value.item() if hasattr(value, "item") else value
    return None if isinstance(value, float) and math.isnan(value) else value


class Phase:
    """Keeps up to `parallel` held-out tasks in flight until every run has trained or failed."""

    def __init__(self, spec: StudySpec, client: Client, run_dir: Path, writer: ResultsWriter,
                 echo: Callable[[str], None], entry: str):
        self.spec, self.client, self.run_dir, self.writer = spec, client, Path(run_dir).resolve(), writer
        self.echo, self.entry = echo, entry
        self.topic = f"dqn-sweep-heldout-{uuid.uuid4().hex[:8]}"
        self.cost = Cost()
        self.failed_seeds: dict[str, dict[int, str]] = {}  # config -> its runs that failed this session, why
        self.futures: dict[Any, Run] = {}

    @property
    def failures(self) -> dict[str, str]:
        """config -> why (some of) its runs failed this session, over all its tasks (`shared_out`)."""
        told = {}
        for config, seeds in self.failed_seeds.items():
            seed, reason = next(iter(seeds.items()))
            told[config] = f"seed {seed}: {reason}" + (f" (and {len(seeds) - 1} more seeds)" if len(seeds) > 1 else "")
        return told

    def go(self, runs: list[Run]) -> None:
        pending, done = deque(runs), as_completed()
        try:
            while pending and len(self.futures) < self.spec.parallel:
                done.add(self.submit(pending.popleft()))
            for future in done:
                run = self.futures.pop(future)
                outcome = dispatch.task_outcome(future)
                if outcome["status"] == "lost" and run.retries < self.spec.budget.max_retries:
                    run.retries += 1
                    self.echo(f"held-out {run.config} {seeds_label(run.seeds)}: {outcome['reason']}; retry {run.retries}")
                    done.add(self.submit(run))
                    continue
                self.settle(run, outcome)
                if pending:
                    done.add(self.submit(pending.popleft()))
        except KeyboardInterrupt:
            with contextlib.suppress(OSError, TimeoutError):  # the workers keep the checkpoints for a rerun
                Event(dispatch.interrupt_event_name(self.topic), client=self.client).set()
            for future in self.futures:
                future.cancel()
            self.echo("held-out phase interrupted: what finished is kept, a rerun trains the rest")
            raise

    def submit(self, run: Run) -> Any:
        """One task: the run's seeds as one population, with the time limit of a trial per as
        many members as a trial has."""
        limit = self.spec.resources.time_limit
        if limit is not None:
            limit *= math.ceil(len(run.seeds) / len(self.spec.seed_list))
        configs = [{**run.fields, "seed": seed} for seed in run.seeds]
        carried = dispatch.task_payload(configs, ((run.part, run.seeds),), self.spec, topic=self.topic,
                                        entry=self.entry, run_dir=self.run_dir, checkpoint=run.checkpoint,
                                        time_limit=limit)
        future = self.client.submit(train_task, carried, pure=False, **dispatch.task_resources(self.spec))
        self.futures[future] = run
        self.echo(f"held-out {run.config} started on {seeds_label(run.seeds)}")
        return future

    def settle(self, run: Run, outcome: Outcome) -> None:
        """Write the runs that trained to the end; note why the others failed."""
        trained, failed = {}, {}
        results = outcome.get("results") or []
        for seed, result in zip(run.seeds, results):
            reason = member_failure(result)
            if reason is None and not (result.get("evals") and result["evals"][-1].get("final")):
                reason = "no final evaluation"
            if reason is None:
                trained[seed] = result["evals"]
            else:
                failed[seed] = reason
        if outcome["status"] != "ok":
            failed = {seed: str(outcome["reason"]) for seed in run.seeds}
        if trained:
            self.writer.add_heldout(run.config, run.trial, trained)
        self.cost.runs += len(trained)
        self.cost.failed += len(failed)
        self.cost.env_steps += int(sum(r.get("env_steps") or 0 for r in results))
        self.cost.train_seconds += max((r.get("wall_seconds") or 0.0 for r in results), default=0.0)
        if failed:
            self.failed_seeds.setdefault(run.config, {}).update(failed)
            self.echo(f"held-out {run.config}: {len(failed)} of {len(run.seeds)} runs FAILED: "
                      f"{dispatch.first_line(self.failures[run.config])}")
        if trained:
            per_seed = [curve_metric(evals, self.spec.objective.metric, self.spec.objective.k)
                        for evals in trained.values()]
            self.echo(f"held-out {run.config} finished {len(trained)} runs: mean {sum(per_seed) / len(per_seed):.2f}")
