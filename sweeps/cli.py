"""The `dqn-sweep` command line: train one agent, or run and inspect sweeps."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
import yaml

from dqn_tf.config import ConfigError

app = typer.Typer(
    help="Hyperparameter sweeps of TensorFlow DQN agents: Optuna picks, Dask runs, pandas reads.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def cli() -> None:
    """Train DQN agents (`train`) and sweep their hyperparameters (`run`, `status`, `best`, `export`)."""


def fail(message: str) -> typer.Exit:
    """Print a one-line error (no traceback) and return the exit to raise."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code=2)


def parse_assignments(assignments: list[str]) -> dict[str, Any]:
    """`key=value` pairs, values read as YAML scalars or lists (`net_arch=[64,64]`)."""
    values: dict[str, Any] = {}
    for item in assignments:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise fail(f"--set {item!r}: expected KEY=VALUE, for example --set learning_rate=1e-3")
        try:
            values[key.strip()] = yaml.safe_load(raw)
        except yaml.YAMLError as error:
            raise fail(f"--set {item!r}: value is not valid YAML ({error.problem})") from None
    return values


def read_config_file(path: Path) -> dict[str, Any]:
    """A YAML or JSON mapping of trainer fields (what `dqn-sweep best` writes)."""
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as error:
        raise fail(f"--config {path}: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise fail(f"--config {path}: not valid YAML ({error})") from None
    if not isinstance(data, dict):
        raise fail(f"--config {path}: expected a mapping of trainer fields, got {type(data).__name__}")
    return data.get("config", data) if isinstance(data.get("config"), dict) else data


@app.command()
def train(
    env: Annotated[Optional[str], typer.Option(help="Gymnasium environment id, e.g. CartPole-v1.")] = None,
    set_: Annotated[
        list[str],
        typer.Option("--set", help="Override a trainer field: KEY=VALUE (YAML value). Repeatable."),
    ] = [],
    config: Annotated[
        Optional[Path], typer.Option(help="YAML/JSON file of trainer fields (e.g. from `dqn-sweep best`).")
    ] = None,
    output: Annotated[
        Path, typer.Option(help="Folder for result.json (created if missing).")
    ] = Path("runs/train"),
    checkpoint_dir: Annotated[
        Optional[Path], typer.Option(help="Checkpoint at each evaluation; rerun with it to resume.")
    ] = None,
) -> None:
    """Train one DQN agent and write OUTPUT/result.json."""
    from sweeps.progress import TrainProgress

    values = read_config_file(config) if config else {}
    if env:
        values["env_id"] = env
    values.update(parse_assignments(set_))
    try:
        from dqn_tf.config import parse_config

        trainer_config = parse_config(values)
    except ConfigError as error:
        raise fail(str(error)) from None

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TF C++ chatter out of the CLI
    from dqn_tf import train as run_training

    with TrainProgress(trainer_config.total_timesteps) as progress:
        try:
            result = run_training(trainer_config, on_event=progress.on_event, checkpoint_dir=checkpoint_dir)
        except ConfigError as error:
            raise fail(str(error)) from None
    output.mkdir(parents=True, exist_ok=True)
    result.save(output / "result.json")
    progress.summary(result, output / "result.json")


def main() -> None:
    app()


if __name__ == "__main__":
    sys.exit(main())
