"""Progress for `dqn-sweep train`: a live bar on a terminal, plain log lines elsewhere."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Self

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table


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
