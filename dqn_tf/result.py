"""What a training run hands back: plain, JSON-serialisable data (no TensorFlow types).

Events passed to `on_event` are plain dicts too, each about one population member:
- ``{"event": "eval", "member", "step", "env_steps", "final", "mean_return", "std_return",
  "min_return", "max_return", "episodes"}``: `step` is the `eval_freq` boundary the evaluation
  belongs to (the member's counter `env_steps` may be past it when `n_envs` does not divide
  `eval_freq`); the final evaluation has `step == total_timesteps` and `final` True
- ``{"event": "progress", "member", "step", "total_timesteps", "steps_per_second", "episodes",
  "loss", "q_mean"}`` (the member's last train call; None before it has trained)
A callback that returns a truthy value stops that member cleanly after that event (the others go
on); a string return value is recorded as the stop reason (for example ``"pruned"``). Answers to
events at the end of the budget (the last progress event, the final evaluation) are ignored:
that member already trained to the end.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

EventCallback = Callable[[dict[str, Any]], Any]


class TrainingDiverged(RuntimeError):
    """The loss or Q-values became NaN or infinite: the run cannot recover."""


@dataclasses.dataclass
class TrainResult:
    """Outcome of one `dqn_tf.train` call, or of one member of `dqn_tf.train_population`.

    A diverged member (NaN/inf loss or Q) has `diverged` set, `stop_reason` "diverged: ...",
    and its last evaluation before diverging as the final one (None when it had none).
    """

    config: dict[str, Any]
    final_eval_mean: float | None
    final_eval_std: float | None
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
    # False: resumed, but some env's state could not be captured, so its episodes started afresh
    resumed_exactly: bool | None = None
    timings: dict[str, float] = dataclasses.field(default_factory=dict)
    member: int = 0
    diverged: bool = False
    loop: str = ""  # "compiled" or "python": which training loop ran (see TrainConfig.loop)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainResult:
        return cls(**data)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2))
