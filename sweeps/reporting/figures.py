"""Drawing a sweep's figures without pyplot: each is a `matplotlib.figure.Figure` on the
non-interactive Agg canvas, so nothing global is touched, figures are freed when dropped, and
everything works on a headless box. Notebooks show a returned figure (`%matplotlib inline`);
`save_png`/`png_bytes` write it. Also the helpers every figure shares: notes where there is
nothing to draw, parameter axes for numeric, categorical and list-valued parameters (`net_arch`
is stored as the JSON text `"[64, 64]"`), colours.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

STATE_COLORS = {
    "COMPLETE": "#2a9d8f",
    "PRUNED": "#e9c46a",
    "FAIL": "#e63946",
    "RUNNING": "#457b9d",
    "WAITING": "#adb5bd",
}
PARAM_PREFIX = "params_"



def new_figure(width: float = 8.0, height: float = 4.5) -> Figure:
    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def note(fig: Figure, text: str, title: str | None = None) -> Figure:
    """A figure that says why there is nothing to draw (keeps callers free of special cases)."""
    ax = fig.add_subplot()
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=12, color="#555555",
            transform=ax.transAxes, wrap=True)
    return fig


def png_bytes(fig: Figure, dpi: int = 100) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def save_png(fig: Figure, path: str | Path, dpi: int = 100) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=dpi)
    return path


def param_names(trials: pd.DataFrame) -> list[str]:
    """The searched parameters (without the `params_` prefix), in table order."""
    return [c[len(PARAM_PREFIX):] for c in trials.columns if c.startswith(PARAM_PREFIX)]


def scalar(value: Any) -> Any:
    """List/array/dict values become JSON text, so they compare and sort as categories."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value)
    return value


def param_axis(series: pd.Series) -> tuple[np.ndarray, dict[str, Any]]:
    """Positions of one parameter's values on an axis, and how to label it.

    Numbers map to themselves (`scale="log"` when positive and spanning >= 30x);
    anything else (strings, lists such as net_arch, booleans) maps to category codes 0..n-1.
    """
    values = series.map(scalar)
    numeric = pd.to_numeric(values, errors="coerce")
    is_bool = values.map(lambda v: isinstance(v, (bool, np.bool_))).any()
    if not is_bool and numeric.notna().sum() == values.notna().sum() and values.notna().any():
        x = numeric.to_numpy(dtype=float)
        finite = x[np.isfinite(x)]
        log = bool(len(finite) and finite.min() > 0 and finite.max() / finite.min() >= 30)
        return x, {"kind": "numeric", "scale": "log" if log else "linear"}
    labels = values.map(lambda v: "—" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v))
    categories = sorted(labels.unique(), key=_category_key)
    codes = labels.map({c: i for i, c in enumerate(categories)}).to_numpy(dtype=float)
    return codes, {"kind": "categorical", "categories": categories}


def _category_key(label: str) -> tuple:
    try:
        return (0, float(label), label)
    except ValueError:
        return (1, 0.0, label)


def seconds_since(times: pd.Series, origin: pd.Timestamp) -> np.ndarray:
    return ((pd.to_datetime(times) - origin).dt.total_seconds()).to_numpy(dtype=float)


def colors(n: int) -> Sequence[Any]:
    palette = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2",
               "#17becf", "#bcbd22", "#7f7f7f"]
    return [palette[i % len(palette)] for i in range(n)]
