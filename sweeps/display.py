"""What the command line shows while it works: a sweep's live status line (`SweepMonitor`) and a
training run's progress bar (`TrainProgress`), rich on a terminal, plain log lines elsewhere."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, Self, TextIO

from rich.console import Console
from rich.live import Live
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from sweeps.driver.tally import Tally


def format_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def status_line(tally: Tally, parallel: int) -> str:
    budget = f"/{tally.n_trials}" if tally.n_trials is not None else ""
    best = f"{tally.best_value:.2f} (trial {tally.best_trial})" if tally.best_value is not None else "-"
    return (
        f"trials {tally.finished}{budget} done ({tally.completed} complete, {tally.pruned} pruned "
        f"this run) | running {tally.running} | failed {tally.failed} | tuning best {best} | "
        f"elapsed {format_seconds(tally.elapsed)} | left ~{format_seconds(tally.remaining_seconds(parallel))}"
    )


class SweepMonitor:
    """Use as a context manager around `Driver.run`; pass it as the driver's monitor."""

    def __init__(self, parallel: int, stream: TextIO | None = None):
        self.parallel = parallel
        self.stream = stream or sys.stdout
        self.console = Console(file=self.stream)
        self.live: Live | None = None
        self.last: Tally | None = None

    def __enter__(self) -> Self:
        if self.console.is_terminal:
            self.live = Live(Text(""), console=self.console, refresh_per_second=2, transient=False)
            self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.__exit__(*exc)
        elif self.last is not None:
            self.log(status_line(self.last, self.parallel))

    def update(self, tally: Tally) -> None:
        self.last = tally
        if self.live is not None:
            self.live.update(Text(status_line(tally, self.parallel), style="bold"))

    def log(self, line: str) -> None:
        """A finished/started/pruned/failed trial: a line above the live status (or a log line)."""
        if self.live is not None:
            self.console.print(line, markup=False, highlight=False)
        else:
            stamp = time.strftime("%H:%M:%S")
            print(f"[{stamp}] {line}", file=self.stream, flush=True)


class TrainProgress:
    """Consumes the trainer's events; never asks it to stop."""

    def __init__(self, total_steps: int, console: Console | None = None):
        self.console = console or Console(stderr=True)
        self.live = self.console.is_terminal
        self.bar = Progress(
            TextColumn("[bold]train"),
            BarColumn(),
            TextColumn("{task.completed:,}/{task.total:,} steps"),
            TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=self.console,
            disable=not self.live,
        )
        self.task = self.bar.add_task("train", total=total_steps, status="")
        self.last_eval = ""

    def __enter__(self) -> Self:
        self.bar.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.__exit__(*exc)

    def on_event(self, event: dict[str, Any]) -> None:
        if event["event"] == "eval":
            self.last_eval = f"eval {event['mean_return']:.1f} ± {event['std_return']:.1f}"
            if not self.live:
                self.console.print(f"step {event['step']:>9,}  {self.last_eval}", highlight=False)
        elif event["event"] == "progress" and not self.live and event["step"] % max(event["total_timesteps"] // 10, 1) == 0:
            self.console.print(
                f"step {event['step']:>9,}  {event['steps_per_second']:,.0f} steps/s", highlight=False
            )
        status = f"{event.get('steps_per_second', 0):,.0f} steps/s  {self.last_eval}"
        self.bar.update(self.task, completed=event["step"], status=status)

    def summary(self, result: Any, path: Path) -> None:
        table = Table(title="dqn-sweep train", show_header=False)
        rows = [
            ("environment", result.config["env_id"]),
            ("final eval return", f"{result.final_eval_mean:.1f} ± {result.final_eval_std:.1f}"),
            ("best eval return", f"{max(e['mean_return'] for e in result.evals):.1f}"),
            ("env steps", f"{result.env_steps:,}"),
            ("wall time", f"{result.wall_seconds:.1f} s"),
            ("steps / s", f"{result.steps_per_second:,.0f}"),
            ("replicas", f"{result.replicas} ({', '.join(result.devices)})"),
            ("result", str(path)),
        ]
        if result.stopped_early:
            rows.append(("stopped early", str(result.stop_reason)))
        for name, value in rows:
            table.add_row(name, value)
        Console(file=sys.stdout).print(table)
