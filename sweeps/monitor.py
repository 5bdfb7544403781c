"""The sweep's live display: a rich status line on a terminal, plain log lines elsewhere."""

from __future__ import annotations

import sys
import time
from typing import Self, TextIO

from rich.console import Console
from rich.live import Live
from rich.text import Text

from sweeps.tally import Tally


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
        f"this run) | running {tally.running} | failed {tally.failed} | best {best} | "
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
