"""dqn_tf: a fast TensorFlow DQN trainer under tf.distribute, usable on its own.

`from dqn_tf import train, TrainConfig` — importing the package does not import TensorFlow;
only calling `train` does.
"""

from dqn_tf.config import ConfigError, TrainConfig
from dqn_tf.result import TrainingDiverged, TrainResult

__all__ = ["ConfigError", "TrainConfig", "TrainResult", "TrainingDiverged", "train"]


def __getattr__(name: str):
    if name == "train":
        from dqn_tf.training import train

        return train
    raise AttributeError(name)
