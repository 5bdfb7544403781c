"""One trial while it runs: its parts in flight, its evaluations, and what to tell Optuna.

The driver owns the Dask side (tasks, futures, retries); a `TrialRun` owns the decisions that
only depend on the trial: when an across-seed value can be reported (every seed has evaluated
at exactly that labelled step), whether the pruner may stop it (never on the final
evaluation: a trial that trained to the end is judged by its objective, nor on the evaluations
that came with its results when no pruner judges them as they come, `sweeps.driver.loop`), and how it
ends.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import optuna
from optuna.trial import TrialState

from sweeps.store.journal import writes_together
from sweeps.store.optuna_private import tell
from sweeps.study.objective import aggregate, curve_metric, objective_value
from sweeps.worker.outcome import Outcome

if TYPE_CHECKING:
    from sweeps.study.spec import Objective

Seeds = tuple[int, ...]  # the seeds of one trial that one task trains
Part = tuple[int, Seeds]  # (trial number, seeds): one trial's members in a task
Task = tuple[Part, ...]  # one Dask task: its parts' members train as one population


@dataclasses.dataclass
class LiveTrial:
    """Driver-side state of one trial while its parts (groups of seeds) are in flight.

    `checkpoint_key` names the trial whose checkpoint folder this one uses: itself, or for a
    re-queued trial the original it resumes.
    """

    optuna_trial: optuna.Trial
    seeds: list[int]
    units: list[Seeds]
    stop: Any  # distributed.Event, set to stop the trial's members
    configs: dict[int, dict[str, Any]]
    checkpoint_key: int
    retries: dict[Seeds, int] = dataclasses.field(default_factory=dict)
    starts: dict[Seeds, int] = dataclasses.field(default_factory=dict)
    started: float | None = None  # when its first task was submitted (monotonic seconds)
    evals: dict[int, list[dict[str, Any]]] = dataclasses.field(default_factory=dict)
    outcomes: dict[Seeds, Outcome] = dataclasses.field(default_factory=dict)
    dropped: set[Seeds] = dataclasses.field(default_factory=set)
    reported: set[int] = dataclasses.field(default_factory=set)
    packed_with: set[int] = dataclasses.field(default_factory=set)
    pruned: bool = False
    fail_reason: str | None = None
    taken_over: bool = False  # another driver took it over (this session's lease expired)

    @property
    def number(self) -> int:
        return self.optuna_trial.number

    @property
    def live(self) -> bool:
        """Still training towards a value here (neither pruned, failed nor taken over)."""
        return not self.pruned and self.fail_reason is None and not self.taken_over

    @property
    def settled(self) -> bool:
        return len(self.outcomes) + len(self.dropped) == len(self.units)

    @property
    def total_timesteps(self) -> int:
        return int(self.configs[self.seeds[0]]["total_timesteps"])

    def results(self) -> dict[int, dict[str, Any]]:
        """Each seed's TrainResult dict, for the runs that returned one."""
        return {seed: result for unit, outcome in self.outcomes.items()
                for seed, result in zip(unit, outcome.get("results") or [])}

    def is_final(self, event: dict[str, Any]) -> bool:
        """The evaluation at the end of training (events without "final" count by their step)."""
        return bool(event.get("final")) or int(event["step"]) >= self.total_timesteps

    # -- evaluations ----------------------------------------------------------------------
    def on_eval(self, event: dict[str, Any], objective: Objective, may_prune: bool = True) -> bool:
        """Record one seed's evaluation and report every step it completes; True when the
        pruner rejects the trial (its members should stop). `may_prune=False` when the study has
        no pruner: asking one reads the trial back from the storage."""
        if not self.live:
            return False
        curve = self.evals.setdefault(event["seed"], [])
        if curve and event["step"] <= curve[-1]["step"]:
            return False  # a rerun that could not resume repeats evaluations already recorded
        curve.append(event)
        return self.report(int(event["step"]), objective, may_prune)

    def report(self, step: int, objective: Objective, may_prune: bool = True) -> bool:
        """Once every seed has evaluated at exactly `step`, report the across-seed value; ask
        the pruner unless it is the final evaluation. True when the trial is pruned now."""
        if step in self.reported:
            return False
        per_seed, final = [], False
        for seed in self.seeds:
            curve = [e for e in self.evals.get(seed, []) if e["step"] <= step]
            if not curve or curve[-1]["step"] != step:
                return False  # this seed has not evaluated there (yet, or it skipped the step)
            per_seed.append(curve_metric(curve, objective.metric, objective.k))
            final = final or self.is_final(curve[-1])
        self.reported.add(step)
        self.optuna_trial.report(aggregate(per_seed, objective.seed_aggregate), step)
        if final or not may_prune or not self.optuna_trial.should_prune():
            return False
        self.pruned = True
        return True

    # -- outcomes ---------------------------------------------------------------------------
    def settle(self, unit: Seeds, outcome: Outcome) -> bool:
        """Record one part's outcome. True when it fails the (live) trial: stop the rest."""
        if outcome["status"] == "lost" and not self.pruned:
            outcome["reason"] += f" (after {self.retries.get(unit, 0)} retries)"
        self.outcomes[unit] = outcome
        if not self.live:
            return False
        self.fail_reason = failure(unit, outcome)
        return self.fail_reason is not None

    def report_results(self, objective: Objective) -> None:
        """Report the steps its results hold that no event brought (a task's last evaluations
        come with its results, `sweeps.worker.task`), never pruning: the trial has ended. Without a
        pruner, this is where a trial's last evaluations are reported."""
        for seed, result in self.results().items():
            self.evals[seed] = list(result["evals"])
        for step in sorted({int(e["step"]) for curve in self.evals.values() for e in curve}):
            self.report(step, objective, may_prune=False)

    def trained_to_end(self) -> bool:
        """Every seed returned a result that ran to its final evaluation (a stop came too late)."""
        results = self.results()
        return len(results) == len(self.seeds) and all(
            not r.get("stopped_early") and r.get("evals") and self.is_final(r["evals"][-1])
            for r in results.values()
        )

    def verdict(self, objective: Objective) -> tuple[TrialState, float | None]:
        """How the trial ends: FAIL (reason in `fail_reason`), PRUNED, or COMPLETE with its
        objective. A pruned trial whose members all trained to the end before the stop reached
        them is COMPLETE: its final evaluation decides, never the pruner."""
        if self.pruned and self.fail_reason is None and self.trained_to_end():
            self.pruned = False
        if not self.pruned:  # a failed trial too: its last evaluations came as results
            self.report_results(objective)
        if self.fail_reason is None and not self.pruned:
            try:
                return TrialState.COMPLETE, objective_value([r["evals"] for r in self.results().values()], objective)
            except ValueError as error:
                self.fail_reason = f"objective: {error}"
        if self.fail_reason is not None:
            return TrialState.FAIL, None
        return TrialState.PRUNED, None

    def conclude(self, study: optuna.Study, objective: Objective) -> tuple[TrialState, float | None]:
        """Record the trial's attributes and tell Optuna its verdict (a FAIL with its reason)."""
        with writes_together(self.optuna_trial.storage):  # the tell reads the trial back: after the block
            self.record_attrs()
            state, value = self.verdict(objective)
            if state == TrialState.FAIL:
                self.optuna_trial.set_user_attr("fail_reason", self.fail_reason)
        tell(study, self.optuna_trial, value, state=None if state == TrialState.COMPLETE else state)
        return state, value

    def rows(self) -> dict[int, dict[str, Any]]:
        """Each seed's evaluations and episodes for the tables (evaluations as they came in
        when the seed returned no result; episodes by column, as a task returns them)."""
        results = self.results()
        return {seed: {"evals": (results.get(seed) or {}).get("evals") or self.evals.get(seed, []),
                       "episodes": (results.get(seed) or {}).get("episodes", [])}
                for seed in self.seeds}

    def record_attrs(self) -> None:
        """Totals over the trial's runs, stored on the trial (and thus in trials.parquet).

        Seconds add up over runs (a population's members share theirs); env steps over seeds, and
        steps/s is the trial's env steps over its training seconds. Checkpoint figures are the
        task's (packed trials share them).
        """
        trial, outcomes = self.optuna_trial, self.outcomes
        results = [r for o in outcomes.values() for r in o.get("results") or []]
        train_seconds = sum(max(r["wall_seconds"] for r in o["results"]) for o in outcomes.values() if o.get("results"))
        env_steps = int(sum(r["env_steps"] for r in results))
        attrs: dict[str, Any] = {
            "packed_with": sorted(self.packed_with),
            # Our resubmissions, or more starts than that where the scheduler reran a task itself.
            "retries": sum(max(self.retries.get(u, 0), self.starts.get(u, 1) - 1) for u in self.units),
            "env_steps": env_steps,
            "wall_seconds": float(sum(o.get("wall_seconds") or 0 for o in outcomes.values())),
            "train_seconds": float(train_seconds),
            "steps_per_second": env_steps / train_seconds if train_seconds else None,
            "worker": ",".join(sorted({o["worker"] for o in outcomes.values() if o.get("worker")})),
        }
        starts = [o["startup_seconds"] for o in outcomes.values() if o.get("startup_seconds")]
        attrs["startup_seconds"] = float(sum(starts) / len(starts)) if starts else None
        resumed = [r["resumed_from_step"] for r in results if r.get("resumed_from_step") is not None]
        attrs["resumed_from_step"] = max(resumed) if resumed else None
        exact = [r["resumed_exactly"] for r in results if r.get("resumed_exactly") is not None]
        attrs["resumed_exactly"] = all(exact) if exact else None  # False: some env restarted its episodes
        attrs["loop"] = ",".join(sorted({r["loop"] for r in results if r.get("loop")})) or None
        attrs.update(checkpoint_attrs(outcomes))
        attrs.update(process_attrs(outcomes.values()))
        for key, value in attrs.items():
            trial.set_user_attr(key, value)


def checkpoint_attrs(outcomes: dict[Seeds, Outcome]) -> dict[str, Any]:
    """Checkpoint saves, seconds per save and size of the last save over the trial's tasks
    (each task's figures are on every member: take its first result's); {} when the trainer
    reported none."""
    timings = [o["results"][0].get("timings") or {} for o in outcomes.values() if o.get("results")]
    timings = [t for t in timings if "checkpoint_saves" in t]
    if not timings:
        return {}
    saves = int(sum(t["checkpoint_saves"] for t in timings))
    seconds = float(sum(t.get("checkpoint_seconds", 0.0) for t in timings))
    return {
        "checkpoint_saves": saves,
        "checkpoint_seconds_per_save": seconds / saves if saves else None,
        "checkpoint_bytes": max((int(t.get("checkpoint_bytes") or 0) for t in timings), default=None),
    }


def seeds_label(unit: Seeds) -> str:
    return f"seed {unit[0]}" if len(unit) == 1 else "seeds " + ",".join(map(str, unit))


def failure(unit: Seeds, outcome: Outcome) -> str | None:
    """Why this run fails its (live) trial: the task failed, or one member's result."""
    if outcome["status"] != "ok":
        return f"{seeds_label(unit)}: {outcome['reason']}"
    for seed, result in zip(unit, outcome["results"]):
        if (reason := member_failure(result)) is not None:
            return f"seed {seed}: {reason}"
    return None


def member_failure(result: dict[str, Any]) -> str | None:
    """Why one member's run fails a trial that was not pruned: it diverged or stopped early."""
    if result.get("diverged"):
        return result.get("stop_reason") or "diverged"
    if result.get("stopped_early"):
        return f"stopped early: {result.get('stop_reason')}"
    return None


def process_attrs(outcomes: Iterable[Outcome]) -> dict[str, Any]:
    """How a trial's tasks started, for its trial attributes: `process_reused` (every task ran in
    a process that had served tasks before: no start-up paid), `process_tasks` (the most tasks
    one of its processes had run, its own included) and `process_rss_mb` (the largest RSS after
    one of its tasks). {} when no task reported (e.g. all were lost with their worker)."""
    runs = [o for o in outcomes if o.get("process_tasks")]
    if not runs:
        return {}
    sizes = [o["process_rss_mb"] for o in runs if o.get("process_rss_mb") is not None]
    return {
        "process_reused": all(o["process_reused"] for o in runs),
        "process_tasks": max(o["process_tasks"] for o in runs),
        "process_rss_mb": float(max(sizes)) if sizes else None,
    }
