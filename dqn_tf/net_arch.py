"""The `net_arch` values and which network they give for an env's observations, without
TensorFlow, so that configs are checked against their env before any work starts.

`net_arch` is an MLP's hidden sizes, or a CNN by name: "nature_cnn" (Mnih et al. 2015, SB3's
NatureCNN: conv 32x8x8 stride 4, 64x4x4 stride 2, 64x3x3 stride 1, dense 512) or "minatar_cnn"
(Young & Tian 2019: conv 16x3x3 stride 1, dense 128); "auto" picks from the observations:
[256, 256] for vectors, NatureCNN for images it fits (36x36 and up, Atari's 84x84), the MinAtar
net for smaller ones (MinAtar's 10x10). Convolutions are VALID, so a CNN needs a minimum size.
"""

from __future__ import annotations

from dqn_tf.errors import ConfigError

# (filters, kernel, stride) of each conv layer, then the dense hidden layers.
CNNS: dict[str, tuple[tuple[tuple[int, int, int], ...], tuple[int, ...]]] = {
    "nature_cnn": (((32, 8, 4), (64, 4, 2), (64, 3, 1)), (512,)),
    "minatar_cnn": (((16, 3, 1),), (128,)),
}
NET_ARCH_NAMES = ("auto", *CNNS)
NET_ARCH_ALLOWED = "'auto', 'nature_cnn', 'minatar_cnn' or a list of positive layer sizes such as [256, 256]"
AUTO_MLP = (256, 256)


def resolve_net_arch(net_arch: tuple[int, ...] | str, obs_shape: tuple[int, ...],
                     source: str = "the env") -> tuple[int, ...] | str:
    """"auto" -> an MLP's sizes or a CNN's name for these observations; a named CNN must fit
    them (ConfigError naming net_arch, its value and `source`'s observation shape otherwise)."""
    image = len(obs_shape) == 3
    if net_arch == "auto":
        if not image:
            return AUTO_MLP
        return "nature_cnn" if min(obs_shape[:2]) >= smallest_input("nature_cnn") else "minatar_cnn"
    if not isinstance(net_arch, str):
        return net_arch
    if net_arch not in CNNS:
        raise ConfigError(f"net_arch = {net_arch!r}: allowed {NET_ARCH_ALLOWED}")
    smallest = smallest_input(net_arch)
    if not image or min(obs_shape[:2]) < smallest:
        raise ConfigError(
            f"net_arch = {net_arch!r}: needs image observations [height, width, channels] of at least "
            f"{smallest}x{smallest}; {source} gives shape {tuple(obs_shape)}; use 'auto' or a list of layer sizes"
        )
    return net_arch


def smallest_input(cnn: str) -> int:
    """The smallest image side the CNN's VALID convolutions leave at least one pixel of."""
    side = 1
    for _, kernel, stride in reversed(CNNS[cnn][0]):
        side = (side - 1) * stride + kernel
    return side
