"""`dqn-sweep train`: one agent, from flags, `--set` and a config file (what `best` writes)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from dqn_tf.config import ConfigError
from sweeps.cli.common import app, fail
from sweeps.study.files import read_mapping, trainer_fields


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
        return trainer_fields(read_mapping(path, f"--config {path}", "trainer fields"))
    except ValueError as error:
        raise fail(str(error)) from None


@app.command()
def train(
    env: Annotated[str | None, typer.Option(help="Gymnasium environment id, e.g. CartPole-v1, or module:EnvId.")] = None,
    env_package: Annotated[
        list[str],
        typer.Option("--env-package", help="Module to import before the env is made (it registers the id). Repeatable."),
    ] = [],  # noqa: B006 - typer reads the default, never mutates it
    set_: Annotated[
        list[str],
        typer.Option("--set", help="Override a trainer field: KEY=VALUE (YAML value). Repeatable."),
    ] = [],  # noqa: B006 - typer reads the default, never mutates it
    config: Annotated[
        Path | None, typer.Option(help="YAML/JSON file of trainer fields (e.g. from `dqn-sweep best`).")
    ] = None,
    output: Annotated[
        Path, typer.Option(help="Folder for result.json (created if missing).")
    ] = Path("runs/train"),
    checkpoint_dir: Annotated[
        Path | None, typer.Option(help="Checkpoint at each evaluation; rerun with it to resume.")
    ] = None,
) -> None:
    """Train one DQN agent and write OUTPUT/result.json."""
    from sweeps.display import TrainProgress

    values = read_config_file(config) if config else {}
    if env:
        values["env_id"] = env
    values.update(parse_assignments(set_))
    if env_package:
        given = values.get("env_packages") or []
        values["env_packages"] = [*given, *env_package] if isinstance(given, list) else given
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
