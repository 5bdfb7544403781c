"""The `dqn-sweep` command line: train one agent, or run and inspect sweeps. Each command module
registers its commands on the one typer app (`sweeps.cli.common`)."""

from __future__ import annotations

from sweeps.cli.common import app

# Importing a command module registers its commands, in this order in `--help`.
# isort: off
from sweeps.cli import train, sweep, reading  # noqa: F401
# isort: on

__all__ = ["app", "main"]


def main() -> None:
    app()

