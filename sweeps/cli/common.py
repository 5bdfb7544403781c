"""What every `dqn-sweep` command shares: the typer app, one-line errors, the run-folder options."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    help="Hyperparameter sweeps of TensorFlow DQN agents: Optuna picks, Dask runs, pandas reads.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def cli() -> None:
    """Train DQN agents (`train`), sweep their hyperparameters (`run`, `heldout`, `status`, `best`,
    `export`) and look at the results (`report`)."""


def fail(message: str) -> typer.Exit:
    """Print a one-line error (no traceback) and return the exit to raise."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code=2)


RunDir = Annotated[Path, typer.Argument(help="Run folder written by `dqn-sweep run` (runs/<study>).")]
StorageOption = Annotated[
    str | None,
    typer.Option("--storage", help="Storage URL to read instead of the one the run folder recorded."),
]
StudyOption = Annotated[str | None, typer.Option("--study", help="Study name (with --storage).")]


def open_run(run_dir: Path, storage: str | None, study: str | None):
    """The run folder's Optuna study and study spec, or a one-line error."""
    from sweeps.store.run_folder import load_run
    from sweeps.store.storage import StorageError
    from sweeps.study.spec import SpecError

    try:
        return load_run(run_dir, storage, study)
    except (StorageError, SpecError) as error:
        raise fail(str(error)) from None
