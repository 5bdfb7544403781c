"""Read a run folder's tables from Python or a notebook: `load(run_dir)` returns one DataFrame
per table (trials, evals, episodes, and the held-out runs: heldout), sorted by trial;
`load(run_dir, tables=["evals"], trials=[3, 7])` reads less. `trials_frame(study)` builds the trials table from an Optuna study.
The formats are described in `sweeps.store.reader`, docs/run-folder.md and docs/heldout.md.
"""

from sweeps.store.reader import ResultsError, load, trials_frame

__all__ = ["ResultsError", "load", "trials_frame"]
