"""Which devices a run trains on, and the tf.distribute strategy that spans them."""

from __future__ import annotations

import dataclasses

import tensorflow as tf

from dqn_tf.config import ConfigError


@dataclasses.dataclass(frozen=True)
class DevicePlan:
    strategy: tf.distribute.Strategy
    devices: tuple[str, ...]

    @property
    def replicas(self) -> int:
        return self.strategy.num_replicas_in_sync


def ensure_logical_cpus(count: int) -> list[str]:
    """Split the CPU into `count` logical devices (only possible before TF initialises)."""
    cpus = tf.config.list_physical_devices("CPU")
    try:
        tf.config.set_logical_device_configuration(
            cpus[0], [tf.config.LogicalDeviceConfiguration() for _ in range(count)]
        )
    except RuntimeError:  # TF already initialised: use what is there if it is enough
        pass
    logical = [d.name for d in tf.config.list_logical_devices("CPU")]
    if len(logical) < count:
        raise ConfigError(
            f"devices = 'cpu:{count}': TensorFlow already started with {len(logical)} logical CPU "
            "device(s) in this process; logical devices must be set before TensorFlow "
            "initialises, so train in a fresh process"
        )
    return logical[:count]


def enable_memory_growth() -> None:
    """Let TensorFlow take GPU memory as it needs it rather than all of it at start-up, so that
    several trials can share a GPU. Only possible before TensorFlow initialises its GPUs, which
    `plan_devices` (the first thing a run does with TensorFlow) makes sure of."""
    for gpu in tf.config.list_physical_devices("GPU"):
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:  # already initialised by an earlier run in this process: as it was set then
            pass


def plan_devices(devices: str | tuple[str, ...]) -> DevicePlan:
    """auto: all GPUs (Mirrored when >= 2), else the CPU; cpu:N: N logical CPUs, Mirrored.
    Memory growth is enabled on every GPU first."""
    enable_memory_growth()
    gpus = [f"/gpu:{i}" for i in range(len(tf.config.list_physical_devices("GPU")))]
    if isinstance(devices, tuple):
        names = devices
    elif devices == "auto":
        names = tuple(gpus) or ("/cpu:0",)
    elif devices == "cpu":
        names = ("/cpu:0",)
    elif devices.startswith("cpu:"):
        names = tuple(ensure_logical_cpus(int(devices[4:])))
    else:  # "gpu" or "gpu:N"
        wanted = len(gpus) if devices == "gpu" else int(devices[4:])
        if not gpus or wanted > len(gpus):
            raise ConfigError(
                f"devices = {devices!r}: {len(gpus)} GPU(s) visible to TensorFlow; "
                "use 'auto', 'cpu' or fewer GPUs"
            )
        names = tuple(gpus[:wanted])
    if len(names) > 1:
        return DevicePlan(tf.distribute.MirroredStrategy(list(names)), names)
    if names[0] == "/cpu:0" and not gpus:
        return DevicePlan(tf.distribute.get_strategy(), names)  # the fast path on CPU
    return DevicePlan(tf.distribute.OneDeviceStrategy(names[0]), names)
