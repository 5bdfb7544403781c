"""A self-contained HTML report of a run folder: one file to scp off a headless box.

`write_report(run_dir, path)` draws the figures of `sweeps.reporting.plots` and `param_plots` as
inline base64 PNGs and the tables as HTML, with the answer's config as YAML ready for
`dqn-sweep train --config` (`sweeps.reporting.best`) and, after a held-out phase, each retrained
config's tuning and held-out scores with the held-out figures (`heldout_plots`). The
page loads nothing from the network (no scripts, no fonts, no stylesheets outside the file).

A 10,000-trial run folder reports in seconds (docs/performance.md): it reads the trials table and
the evaluations of the top trials only (never the episodes), figures that draw a mark per trial
draw the best (or latest) MAX_DRAWN, the table lists the best MAX_ROWS, and failures are grouped
by reason. The Optuna study, for its importance evaluator, is opened up to IMPORTANCE_STUDY_MAX
COMPLETE trials only (replaying a large journal takes seconds); larger studies get the table's
rank correlation.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pandas as pd

from sweeps.reporting import answer, heldout_plots, param_plots, plots
from sweeps.reporting.best import best_config, best_config_yaml, missing
from sweeps.reporting.failures import failure_groups, listed
from sweeps.reporting.figures import PARAM_PREFIX, png_bytes
from sweeps.store.reader import load
from sweeps.store.run_folder import load_run, load_spec_copy
from sweeps.study import scores
from sweeps.study.heldout import BASELINE
from sweeps.study.ranking import complete, ranked
from sweeps.study.spec import StudySpec

REPORT_NAME = "report.html"
MAX_DRAWN = 1_000
MAX_ROWS = 500
IMPORTANCE_STUDY_MAX = 2_000
FAILED_SHOWN = 20  # trial numbers listed per failure reason


def open_study(run_dir: Path) -> tuple[optuna.Study | None, StudySpec | None]:
    """(Optuna study, StudySpec) of a run folder, or (None, None) where they cannot be read.

    The report only needs the tables; the study adds Optuna's importance evaluator and the
    spec turns the best params into a full trainer config.
    """
    try:
        return load_run(run_dir)
    except Exception:  # noqa: BLE001 - a report of the tables alone is still useful
        return None, None


def spec_of(run_dir: Path) -> StudySpec | None:
    """The study as run (`RUN_DIR/study.yaml`) or None."""
    try:
        return load_spec_copy(run_dir)
    except Exception:  # noqa: BLE001
        return None


def trials_table(trials: pd.DataFrame, limit: int | None = None) -> pd.DataFrame:
    """The trials sorted by objective with the columns worth reading (fail reason: first line)."""
    if trials.empty:
        return trials
    table = ranked(trials)
    columns = ["number", "state", "value"] + [c for c in table.columns if c.startswith(PARAM_PREFIX)]
    columns += [c for c in ("env_steps", "wall_seconds", "steps_per_second", "worker", "fail_reason")
                if c in table.columns]
    table = table[columns].copy()
    if "fail_reason" in table:
        table["fail_reason"] = table["fail_reason"].map(
            lambda r: "" if missing(r) else str(r).strip().splitlines()[0][:160])
    table.columns = [c.removeprefix(PARAM_PREFIX) for c in table.columns]
    return table.head(limit) if limit else table


def report_figures(tables: dict[str, pd.DataFrame], study: Any = None, top: int = 5) -> list[tuple[str, Callable[[], Any]]]:
    """(title, draw) for every figure of one study, in report order; figures that draw a mark
    per trial get the best (or the latest) MAX_DRAWN, and say so in their title."""
    trials, evals = tables["trials"], tables["evals"]
    best, best_note = best_trials(trials, MAX_DRAWN)
    latest, latest_note = latest_trials(trials, MAX_DRAWN)
    return [
        ("Learning curves of the top trials", lambda: plots.learning_curves(evals, trials, top=top)),
        ("Objective by trial and running best", lambda: plots.objective_history(trials)),
        ("Hyperparameter importance", lambda: param_plots.param_importance(trials, study)),
        ("Objective vs each parameter" + best_note, lambda: param_plots.param_slices(best)),
        ("Parallel coordinates" + best_note, lambda: param_plots.parallel_coordinates(best)),
        ("Trials on workers" + latest_note, lambda: plots.worker_timeline(latest)),
    ]


def best_trials(trials: pd.DataFrame, limit: int) -> tuple[pd.DataFrame, str]:
    """The best `limit` COMPLETE trials (with the other trials' numbers kept out) and a note."""
    done = complete(trials)
    if len(done) <= limit:
        return trials, ""
    return ranked(done).head(limit), f" (the best {limit:,} of {len(done):,} COMPLETE trials)"


def latest_trials(trials: pd.DataFrame, limit: int) -> tuple[pd.DataFrame, str]:
    """The `limit` trials that started last, and a note."""
    if len(trials) <= limit:
        return trials, ""
    chosen = trials.sort_values("datetime_start", na_position="first").tail(limit)
    return chosen, f" (the last {limit:,} of {len(trials):,} trials to start)"


def curves_of(run_dir: Path, trials: pd.DataFrame, top: int) -> pd.DataFrame:
    """The evaluations the learning-curve figure draws: the top COMPLETE trials' only (all of
    them when no trial is COMPLETE: the figure then picks the trials that got furthest)."""
    done = complete(trials)
    if done.empty:
        return load(run_dir, tables=["evals"])["evals"]
    numbers = ranked(done)["number"].head(top).astype(int).tolist()
    return load(run_dir, tables=["evals"], trials=numbers)["evals"]


def write_report(run_dir: str | Path, path: str | Path | None = None, *, top: int = 5) -> Path:
    """Write the HTML report of `run_dir` to `path` (default RUN_DIR/report.html); returns it."""
    run_dir = Path(run_dir)
    path = Path(path) if path is not None else run_dir / REPORT_NAME
    loaded = load(run_dir, tables=["trials", "heldout"])
    trials, heldout = loaded["trials"], loaded["heldout"]
    small = len(complete(trials)) <= IMPORTANCE_STUDY_MAX
    study, spec = open_study(run_dir) if small else (None, None)
    spec = spec or spec_of(run_dir)
    figures = scores.figures(heldout, spec.objective) if spec is not None else pd.DataFrame(columns=scores.FIGURES)
    trials = answer.with_figures(trials, figures)  # the figures below and the ranking: the same rows
    tables = {"trials": trials, "evals": curves_of(run_dir, trials, top)}
    name = spec.study if spec is not None else run_dir.name
    best = best_config(trials, spec, heldout)

    generated = f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M:%S}"
    parts = [f"<h1>Sweep report: {_e(name)}</h1>",
             f"<p class='meta'>Run folder <code>{_e(run_dir.resolve())}</code>; generated {generated} UTC.</p>",
             _summary(trials)]
    if best is None:
        parts.append("<section id='best'><h2>Best trial</h2><p>No COMPLETE trial yet.</p></section>")
    else:
        text = best_config_yaml(best)
        parts.append(
            "<section id='best'><h2>Best trial</h2>"
            f"<p class='best'>Best trial: <strong id='best-trial'>{best['trial']}</strong>, objective "
            f"<strong id='best-value'>{best['value']:.4f}</strong> (on its tuning seeds)</p>"
            f"<p id='chosen-by'>Chosen by {_e(best['chosen_by'])}.</p>"
            "<p>Save this as <code>best.yaml</code> (or run <code>dqn-sweep best "
            f"{_e(run_dir)} --output best.yaml</code>), then "
            "<code>dqn-sweep train --config best.yaml</code>:</p>"
            f"<pre id='best-config'>{_e(text)}</pre></section>"
        )
    if not figures.empty:
        parts.append(_heldout(trials, heldout, figures))
    parts.append("<section id='figures'><h2>Figures</h2>")
    for title, draw in report_figures(tables, study, top=top):
        fig = draw()
        data = base64.b64encode(png_bytes(fig)).decode("ascii")
        parts.append(f"<figure><img alt='{_e(title)}' src='data:image/png;base64,{data}'>"
                     f"<figcaption>{_e(title)}</figcaption></figure>")
    parts.append("</section>")
    table = trials_table(trials, limit=MAX_ROWS)
    shown = "" if len(trials) <= MAX_ROWS else (
        f"<p>The best {MAX_ROWS} of {len(trials):,} trials; all are in <code>trials.parquet</code> "
        f"(<code>dqn-sweep export {_e(run_dir)}</code> writes CSV).</p>")
    parts.append("<section id='trials'><h2>Trials, best first</h2>" + shown
                 + (_table(table) if not table.empty else "<p>No trials yet.</p>") + "</section>")
    parts.append(_failures(trials))
    document = (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>dqn-sweep report: {_e(name)}</title><style>{STYLE}</style></head>"
        f"<body>{''.join(parts)}</body></html>\n"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(document, encoding="utf-8")
    tmp.replace(path)
    return path


def heldout_table(trials: pd.DataFrame, figures: pd.DataFrame) -> pd.DataFrame:
    """Each config the held-out phase retrained (best held-out score first, then the baseline):
    its tuning objective, held-out score (the objective's aggregate over held-out seeds), mean
    and IQM with their 95% intervals, the optimism gap (tuning minus held-out) and the
    difference to the baseline with its interval."""
    if figures.empty:
        return pd.DataFrame()
    rows = figures.set_index("config").loc[heldout_plots.configs_in_order(trials, figures)].reset_index()
    tuning = trials.set_index("number")["value"]
    tuned = rows["trial"].map(lambda t: None if pd.isna(t) else tuning.get(int(t)))
    interval = lambda low, high: [f"[{lo:.1f}, {hi:.1f}]" if pd.notna(lo) and pd.notna(hi) else ""
                                  for lo, hi in zip(rows[low], rows[high])]
    return pd.DataFrame({
        "config": rows["config"], "held-out seeds": rows["seeds"],
        "tuning objective": pd.to_numeric(tuned, errors="coerce"), "held-out score": rows["value"],
        "optimism gap": pd.to_numeric(tuned, errors="coerce") - rows["value"],
        "mean": rows["mean"], "mean 95% CI": interval("mean_low", "mean_high"),
        "IQM": rows["iqm"], "IQM 95% CI": interval("iqm_low", "iqm_high"),
        "vs baseline": pd.to_numeric(rows["vs_baseline"], errors="coerce"),
        "vs baseline 95% CI": interval("vs_baseline_low", "vs_baseline_high"),
    })


def _heldout(trials: pd.DataFrame, heldout: pd.DataFrame, figures: pd.DataFrame) -> str:
    """The held-out section: the table of retrained configs and the two held-out figures."""
    table = heldout_table(trials, figures)
    seeds = sorted(int(s) for s in heldout["seed"].unique())
    baseline = " and the baseline" if (figures["config"] == BASELINE).any() else ""
    parts = ["<section id='heldout'><h2>Held-out seeds: tuning score vs what a user will see</h2>",
             (f"<p>The top trials by tuning objective{baseline}, retrained on held-out seeds no trial tuned on "
             f"({_e(', '.join(map(str, seeds)))}): the answer is the best held-out score "
             "(docs/heldout.md). Intervals: 95% percentile bootstrap over seeds.</p>"), _table(table)]
    for title, fig in (("Tuning objective vs held-out score", heldout_plots.optimism_gap(trials, figures)),
                       ("Learning curves on held-out seeds", heldout_plots.heldout_curves(heldout, trials, figures))):
        data = base64.b64encode(png_bytes(fig)).decode("ascii")
        parts.append(f"<figure><img alt='{_e(title)}' src='data:image/png;base64,{data}'>"
                     f"<figcaption>{_e(title)}</figcaption></figure>")
    return "".join(parts) + "</section>"


def _failures(trials: pd.DataFrame) -> str:
    """Why trials failed: each reason with how many trials, which, and one whole reason."""
    rows = []
    for group in failure_groups(trials):
        numbers = group.numbers
        label = f"Trial {numbers[0]}" if len(numbers) == 1 else f"{len(numbers)} trials: {listed(numbers, FAILED_SHOWN)}"
        rows.append(f"<h3>{_e(label)}</h3><pre>{_e(group.example)}</pre>")
    return f"<section id='failures'><h2>Why trials failed</h2>{''.join(rows)}</section>" if rows else ""


def _summary(trials: pd.DataFrame) -> str:
    if trials.empty:
        return "<p id='summary'>No trials yet.</p>"
    counts = trials["state"].value_counts()
    text = ", ".join(f"{n} {s.lower()}" for s, n in counts.items())
    seconds = pd.to_numeric(trials.get("wall_seconds"), errors="coerce").sum()
    steps = pd.to_numeric(trials.get("env_steps"), errors="coerce").sum()
    start = pd.to_datetime(trials["datetime_start"]).min()
    end = pd.to_datetime(trials["datetime_complete"]).max()
    span = (end - start).total_seconds() if pd.notna(start) and pd.notna(end) else float("nan")
    return (f"<p id='summary'>{len(trials)} trials: {_e(text)}. {int(steps):,} env steps trained in "
            f"{seconds:,.0f} trial-seconds over {span:,.0f} s of wall time.</p>")


def _table(frame: pd.DataFrame) -> str:
    return frame.to_html(index=False, na_rep="", float_format=lambda v: f"{v:.4g}", border=0,
                         classes="trials", escape=True)


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


STYLE = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:2rem auto;max-width:1150px;
color:#222;padding:0 1rem}
h1{margin-bottom:.2rem}.meta{color:#666;margin-top:0}
pre{background:#f6f8fa;padding:.8rem;overflow-x:auto;border-radius:4px}
figure{margin:1.5rem 0}figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{color:#555;font-size:.9rem}
table.trials{border-collapse:collapse;font-size:.85rem}
table.trials td,table.trials th{padding:.25rem .5rem;border-bottom:1px solid #ddd;text-align:right}
.best{font-size:1.15rem}
"""
