"""What a training run hands back: plain, JSON-serialisable data (no TensorFlow types).

Events passed to `on_event` are plain dicts too:
- ``{"event": "eval", "step", "mean_return", "std_return", "min_return", "max_return", "episodes"}``
- ``{"event": "progress", "step", "total_timesteps", "steps_per_second", "episodes"}``
A callback that returns a truthy value stops training cleanly after that event; a string
return value is recorded as the stop reason (for example ``"pruned"``).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Callable

EventCallback = Callable[[dict[str, Any]], Any]


class TrainingDiverged(RuntimeError):
    """The loss or Q-values became NaN or infinite: the run cannot recover."""


@dataclasses.dataclass
class TrainResult:
    """Outcome of one `dqn_tf.train` call."""

    config: dict[str, Any]
    final_eval_mean: float
    final_eval_std: float
    evals: list[dict[str, Any]]
    episodes: list[dict[str, Any]]
    env_steps: int
    gradient_steps: int
    wall_seconds: float
    steps_per_second: float
    replicas: int
    devices: list[str]
    stopped_early: bool = False
    stop_reason: str | None = None
    resumed_from_step: int | None = None
    timings: dict[str, float] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainResult:
        return cls(**data)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2))
