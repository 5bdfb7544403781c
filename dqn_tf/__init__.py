"""dqn_tf: a fast TensorFlow DQN trainer under tf.distribute, usable on its own.

`from dqn_tf import train, train_population, TrainConfig` — importing the package does not
import TensorFlow; only calling `train` or `train_population` does.
"""

from dqn_tf.config import ConfigError, TrainConfig
from dqn_tf.result import TrainingDiverged, TrainResult

__all__ = ["ConfigError", "TrainConfig", "TrainResult", "TrainingDiverged", "train", "train_population"]


def __getattr__(name: str):
    if name in ("train", "train_population"):
        from dqn_tf import training

        return getattr(training, name)
    raise AttributeError(name)
