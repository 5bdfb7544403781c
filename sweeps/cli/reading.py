"""The commands that read a run folder: `status`, `best`, `export`, `report`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sweeps.cli.common import RunDir, StorageOption, StudyOption, app, fail, open_run


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
