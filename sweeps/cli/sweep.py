"""`dqn-sweep run` and `dqn-sweep heldout`: the commands that train on a cluster. Heavy imports
(optuna, distributed, pandas) stay inside the commands so `dqn-sweep train` starts fast."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from sweeps.cli.common import RunDir, StorageOption, StudyOption, app, fail, open_run


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
