"""The `dqn-sweep` command line: train one agent, or run and inspect sweeps."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from dqn_tf.config import ConfigError
from sweeps.study.files import read_mapping, trainer_fields

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


# --- sweeps ------------------------------------------------------------------------------
# Heavy imports (optuna, distributed, pandas) stay inside the commands so `train` starts fast.

RunDir = Annotated[Path, typer.Argument(help="Run folder written by `dqn-sweep run` (runs/<study>).")]
StorageOption = Annotated[
    str | None,
    typer.Option("--storage", help="Storage URL to read instead of the one the run folder recorded."),
]
StudyOption = Annotated[str | None, typer.Option("--study", help="Study name (with --storage).")]


@app.command()
def run(
    study_file: Annotated[Path, typer.Argument(help="Study file (YAML), e.g. studies/cartpole.yaml.")],
    scheduler: Annotated[
        str | None, typer.Option(help="Dask scheduler address (tcp://HOST:8786); default: a local cluster.")
    ] = None,
    storage: Annotated[
        str | None,
        typer.Option(help="Optuna storage: sqlite:///F.db, postgresql://..., mysql://..., redis://..., "
                     "or a journal file. Default: $DQN_SWEEP_STORAGE, else OUTPUT/journal.log. "
                     "Passwords are never stored or shown: use $DQN_SWEEP_STORAGE or ${VAR} in the URL."),
    ] = None,
    n_trials: Annotated[int | None, typer.Option(help="Finished trials to reach (overrides budget.n_trials).")] = None,
    parallel: Annotated[int | None, typer.Option(help="Tasks in flight (overrides parallel); a task trains one trial's seeds.")] = None,
    output: Annotated[Path | None, typer.Option(help="Run folder. Default: runs/<study>.")] = None,
    tls_ca_file: Annotated[
        str | None, typer.Option(help="CA certificate of a tls:// cluster (default: Dask config).")
    ] = None,
    tls_cert: Annotated[str | None, typer.Option(help="Client certificate for a tls:// cluster.")] = None,
    tls_key: Annotated[str | None, typer.Option(help="Client private key for a tls:// cluster.")] = None,
    allow_version_mismatch: Annotated[
        bool, typer.Option(help="Warn, instead of stopping, when workers run another dqn-sweep, "
                           "TensorFlow or gymnasium than this driver.")
    ] = False,
    env_package: Annotated[
        list[str],
        typer.Option("--env-package", help="Module to import before the env is made (added to the study's "
                     "env_packages). Repeatable."),
    ] = [],  # noqa: B006 - typer reads the default, never mutates it
    upload: Annotated[
        list[Path],
        typer.Option("--upload", help="Env code for workers that lack it: a module file (.py), a package "
                     "folder or a .zip, sent with Dask's upload plugin to every worker. Repeatable."),
    ] = [],  # noqa: B006 - typer reads the default, never mutates it
    entry: Annotated[str, typer.Option(hidden=True, help="module:function trainer (tests only).")] = "",
) -> None:
    """Run a sweep, or continue it: rerunning on the same study picks up where it stopped."""
    from sweeps.display import SweepMonitor
    from sweeps.driver.cluster import ClusterError, SecurityError, tls_security
    from sweeps.driver.env_check import UploadError, prepare_uploads
    from sweeps.driver.session import run_sweep
    from sweeps.store.outages import StorageUnreachable
    from sweeps.store.storage import StorageError
    from sweeps.study.loading import load_spec
    from sweeps.study.spec import SpecError
    from sweeps.worker.supervise import ENTRY

    overrides: dict[str, Any] = {}
    if n_trials is not None:
        overrides["budget.n_trials"] = n_trials
    if parallel is not None:
        overrides["parallel"] = parallel
    try:
        uploads = prepare_uploads(upload)  # importable here too: the study is checked with them
        spec = load_spec(study_file, overrides, env_packages=env_package)
    except (UploadError, SpecError) as error:
        raise fail(str(error)) from None
    run_dir = output or Path("runs") / spec.study
    try:
        security = tls_security(tls_ca_file, tls_cert, tls_key)
    except SecurityError as error:
        raise fail(str(error)) from None
    try:
        with SweepMonitor(spec.parallel) as monitor:
            _, tally = run_sweep(
                spec, run_dir, storage_url=storage, scheduler=scheduler, monitor=monitor,
                echo=monitor.log, entry=entry or ENTRY, security=security,
                allow_version_mismatch=allow_version_mismatch, uploads=uploads,
            )
    except (StorageError, ClusterError, SecurityError, SpecError) as error:
        raise fail(str(error)) from None
    except StorageUnreachable as error:
        typer.echo(f"error: {error}; stopped. The trials in flight stay RUNNING until their leases expire "
                   f"(storage.grace = {spec.storage.grace} s) and a driver takes them over: once the storage "
                   f"is back, resume with: dqn-sweep run {study_file}", err=True)
        raise typer.Exit(code=1) from None
    except KeyboardInterrupt:
        typer.echo(f"interrupted; resume with: dqn-sweep run {study_file}", err=True)
        raise typer.Exit(code=130) from None
    typer.echo(f"{spec.study}: {tally.finished} trials finished, {tally.failed} failed this run; tables in {run_dir}")
    from sweeps.reporting.status import answer_lines

    for line in answer_lines(run_dir, spec):
        typer.echo(line)


@app.command()
def heldout(
    run_dir: RunDir,
    top_k: Annotated[int | None, typer.Option(help="Configs to retrain: the best K by tuning objective "
                                              "(default: the study's heldout.top_k).")] = None,
    seeds: Annotated[int | None, typer.Option(help="Held-out seeds per config, at least (new ones are "
                                              "appended, none reused; default: the study's heldout.seeds).")] = None,
    baseline: Annotated[str | None, typer.Option(help="Also train this config on the same seeds: 'defaults' "
                                                 "or a YAML file of trainer fields (default: the study's).")] = None,
    scheduler: Annotated[
        str | None, typer.Option(help="Dask scheduler address (tcp://HOST:8786); default: a local cluster.")
    ] = None,
    parallel: Annotated[int | None, typer.Option(min=1, help="Tasks in flight (overrides parallel).")] = None,
    storage: StorageOption = None,
    study: StudyOption = None,
    entry: Annotated[str, typer.Option(hidden=True, help="module:function trainer (tests only).")] = "",
) -> None:
    """Retrain the best trials of a finished sweep on held-out seeds (docs/heldout.md), or finish or
    extend that: a rerun trains only the runs the run folder lacks."""
    from pydantic import ValidationError

    from sweeps.driver.cluster import ClusterError
    from sweeps.driver.session import run_heldout
    from sweeps.reporting.status import answer_lines
    from sweeps.store.run_folder import save_run_info, storage_of_run
    from sweeps.study.heldout import DEFAULTS
    from sweeps.study.spec import Heldout, SpecError
    from sweeps.worker.supervise import ENTRY

    optuna_study, spec = open_run(run_dir, storage, study)
    given = {"top_k": top_k, "seeds": seeds,
             "baseline": baseline if baseline in (None, DEFAULTS) else str(Path(baseline).resolve())}
    try:
        settings = Heldout(**{**(spec.heldout or Heldout()).model_dump(), **{k: v for k, v in given.items() if v is not None}})
    except ValidationError as error:
        raise fail("; ".join(f"--{str(e['loc'][0]).replace('_', '-')} {e['input']!r}: {e['msg']}"
                             for e in error.errors())) from None
    spec = spec.model_copy(update={"heldout": settings, **({"parallel": parallel} if parallel else {})})
    try:
        run_heldout(spec, optuna_study, run_dir, scheduler=scheduler, echo=typer.echo, entry=entry or ENTRY,
                    before=lambda: save_run_info(spec, run_dir, storage_of_run(run_dir, storage)))
    except (ClusterError, SpecError) as error:
        raise fail(str(error)) from None
    except KeyboardInterrupt:
        typer.echo(f"interrupted; finish with: dqn-sweep heldout {run_dir}", err=True)
        raise typer.Exit(code=130) from None
    for line in answer_lines(run_dir, spec):
        typer.echo(line)


def open_run(run_dir: Path, storage: str | None, study: str | None):
    from sweeps.store.run_folder import load_run
    from sweeps.store.storage import StorageError
    from sweeps.study.spec import SpecError

    try:
        return load_run(run_dir, storage, study)
    except (StorageError, SpecError) as error:
        raise fail(str(error)) from None


@app.command()
def status(run_dir: RunDir, storage: StorageOption = None, study: StudyOption = None) -> None:
    """Trials by state, the best so far, and why trials failed (grouped by reason)."""
    from sweeps.reporting.status import fresh_table, heldout_of, summary
    from sweeps.store.storage import StorageError

    try:
        found = None if storage or study else fresh_table(run_dir)
    except StorageError as error:
        raise fail(str(error)) from None
    if found is None:
        from sweeps.store.reader import trials_frame

        optuna_study, _ = open_run(run_dir, storage, study)
        found = optuna_study.study_name, trials_frame(optuna_study)
    for line in summary(*found, *heldout_of(run_dir)):
        typer.echo(line)


@app.command()
def best(
    run_dir: RunDir,
    output: Annotated[Path | None, typer.Option(help="Write the YAML here instead of stdout.")] = None,
    storage: StorageOption = None,
    study: StudyOption = None,
) -> None:
    """The answer's full trainer config as YAML, ready for `dqn-sweep train --config FILE`, with how
    it was chosen and its held-out figures."""
    from sweeps.reporting.best import best_config, best_config_yaml
    from sweeps.reporting.status import heldout_of
    from sweeps.store.reader import trials_frame

    optuna_study, spec = open_run(run_dir, storage, study)
    chosen = best_config(trials_frame(optuna_study), spec, heldout_of(run_dir)[0])
    if chosen is None:
        raise fail(f"{run_dir}: no COMPLETE trial yet")
    text = best_config_yaml(chosen)
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text)
        typer.echo(f"wrote {output}; train it with: dqn-sweep train --config {output}")


@app.command()
def export(
    run_dir: RunDir,
    format_: Annotated[str, typer.Option("--format", help="parquet or csv.")] = "csv",
    output: Annotated[Path | None, typer.Option(help="Folder for the tables. Default: RUN_DIR/export.")] = None,
    storage: StorageOption = None,
    study: StudyOption = None,
) -> None:
    """Write trials (fresh from the study's storage), evals and episodes tables as csv or parquet."""
    from sweeps.store.reader import load, trials_frame

    if format_ not in ("parquet", "csv"):
        raise fail(f"--format {format_!r}: allowed: parquet, csv")
    optuna_study, _ = open_run(run_dir, storage, study)
    tables = {**load(run_dir), "trials": trials_frame(optuna_study)}
    folder = output or run_dir / "export"
    folder.mkdir(parents=True, exist_ok=True)
    for name, frame in tables.items():
        path = folder / f"{name}.{format_}"
        frame.to_parquet(path, index=False) if format_ == "parquet" else frame.to_csv(path, index=False)
        typer.echo(f"wrote {path} ({len(frame)} rows)")


@app.command()
def report(
    run_dir: RunDir,
    output: Annotated[
        Path | None, typer.Option(help="HTML file to write. Default: RUN_DIR/report.html.")
    ] = None,
    top: Annotated[int, typer.Option(help="Trials in the learning-curve figure.")] = 5,
) -> None:
    """Write a self-contained HTML report (figures inline, tables, the best config) to scp anywhere."""
    from sweeps.reporting.report import write_report

    if not (run_dir / "trials.parquet").exists():
        raise fail(f"{run_dir}: no trials.parquet; is it a run folder of `dqn-sweep run`?")
    path = write_report(run_dir, output, top=top)
    typer.echo(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB); open it in any browser")


def main() -> None:
    app()


if __name__ == "__main__":
    sys.exit(main())
