"""Q-networks as plain lists of weights: one member's, or members' stacked on a leading axis.

The Python loop gives each member its own variables and plain ops; the compiled loop stacks
members ([K, in, out] kernels, batched matmuls). Either way member k computes bit for bit what
`train` with its config computes: a batched matmul sums each member as its plain one does, and
a stacked bias's gradient is summed by a matmul too (`add_stacked_bias`). Last-bit differences
matter: RL amplifies them until the curves part.

`net_arch` (see the `net_arch` module) is an MLP's hidden sizes or a CNN's name; convolutions are VALID,
channels-last, and the Q head (or V and A heads) follows the last dense layer.

Weights start as Keras' seeded GlorotUniform gives them (Keras' own Dense and Conv2D default),
one seed per layer drawn from the member's seed, biases zero. SB3's DQN uses PyTorch's defaults
(it applies orthogonal init only to its actor-critic policies), so neither matches it bit for
bit; Glorot keeps one rule for every layer and every net here.
"""

from __future__ import annotations

import dataclasses
import math

import keras
import numpy as np
import tensorflow as tf

from dqn_tf.net_arch import CNNS, resolve_net_arch


@dataclasses.dataclass(frozen=True)
class Architecture:
    """Everything that fixes a member's weight shapes and forward pass, so that the Python loop,
    the compiled loop and acting all build the same network from it."""

    obs_dim: int | tuple[int, ...]  # a vector's size, or an image's (H, W, C)
    n_actions: int
    net_arch: tuple[int, ...] | str  # hidden sizes, a CNN's name, or "auto" (resolved here)
    dueling: bool
    obs_dtype: str = "float32"  # "uint8" pixels are cast in the graph ...
    obs_scale: float = 1.0  # ... and multiplied by this
    compute_dtype: str = "float32"  # "bfloat16" / "float16" under mixed precision; weights stay float32

    def __post_init__(self) -> None:
        net_arch = self.net_arch if isinstance(self.net_arch, str) else tuple(int(n) for n in self.net_arch)
        object.__setattr__(self, "net_arch", resolve_net_arch(net_arch, self.obs_shape))

    @property
    def obs_shape(self) -> tuple[int, ...]:
        return (int(self.obs_dim),) if isinstance(self.obs_dim, (int, np.integer)) else tuple(self.obs_dim)

    @property
    def convs(self) -> tuple[tuple[int, int, int], ...]:
        return CNNS[self.net_arch][0] if isinstance(self.net_arch, str) else ()

    @property
    def hidden(self) -> tuple[int, ...]:
        return CNNS[self.net_arch][1] if isinstance(self.net_arch, str) else self.net_arch

    @property
    def numpy_policy(self) -> bool:
        """An MLP on float vectors: acting can use a numpy mirror (see `policy`; float32 even
        under mixed precision)."""
        return not self.convs and len(self.obs_shape) == 1 and self.obs_dtype == "float32"

    def kernel_shapes(self) -> list[tuple[str, tuple[int, ...]]]:
        """(name, kernel shape) in order: convs, hidden layers, then the head(s)."""
        shapes: list[tuple[str, tuple[int, ...]]] = []
        if self.convs:
            height, width, channels = self.obs_shape
            for i, (filters, kernel, stride) in enumerate(self.convs):
                shapes.append((f"conv_{i}", (kernel, kernel, channels, filters)))
                height, width = (height - kernel) // stride + 1, (width - kernel) // stride + 1
                channels = filters
            fan_in = height * width * channels
        else:
            fan_in = math.prod(self.obs_shape)
        for i, units in enumerate(self.hidden):
            shapes.append((f"hidden_{i}", (fan_in, units)))
            fan_in = units
        if self.dueling:
            return shapes + [("value", (fan_in, 1)), ("advantage", (fan_in, self.n_actions))]
        return shapes + [("q_values", (fan_in, self.n_actions))]

    def greedy_layer_indices(self) -> list[int]:
        """Layers whose chain gives argmax Q: with a dueling head that is the advantage stream
        (V and mean(A) are the same for every action), so the value head is skipped."""
        count = len(self.convs) + len(self.hidden)
        return list(range(count)) + [count + (1 if self.dueling else 0)]


def initial_weights(arch: Architecture, seed: int) -> list[np.ndarray]:
    """[kernel, bias, kernel, bias, ...] of one member."""
    layers = len(arch.convs) + len(arch.hidden)
    layer_seeds = np.random.default_rng(seed).integers(0, 2**31 - 1, size=layers + 2)
    weights = []
    for (_, shape), layer_seed in zip(arch.kernel_shapes(), layer_seeds.tolist()):
        init = keras.initializers.GlorotUniform(seed=layer_seed)
        weights += [np.asarray(init(shape), np.float32), np.zeros(shape[-1], np.float32)]
    return weights


def q_values(arch: Architecture, weights: list[tf.Tensor], obs: tf.Tensor) -> tf.Tensor:
    """float32 Q-values [..., B, n_actions] for observations [..., B, *obs_shape]: one member's
    weights, or members' weights stacked on a leading axis (kernels [K, in, out] or
    [K, kh, kw, C, F], biases [K, 1, out]); each member gets the bits of its own plain net."""
    dtype = tf.as_dtype(arch.compute_dtype)
    if dtype != tf.float32:
        weights = [tf.cast(w, dtype) for w in weights]
    hidden = obs if obs.dtype == dtype else tf.cast(obs, dtype)
    if arch.obs_scale != 1.0:
        hidden = hidden * tf.constant(arch.obs_scale, dtype)
    for i, (_, _, stride) in enumerate(arch.convs):
        kernel, bias = weights[2 * i], weights[2 * i + 1]
        if kernel.shape.rank == 5:  # members stacked
            hidden = tf.nn.relu(stacked_conv(hidden, kernel, bias, stride))
        else:
            hidden = tf.nn.relu(tf.nn.conv2d(hidden, kernel, stride, "VALID") + bias)
    rank = len(arch.obs_shape)
    if rank > 1:  # flatten an image (the CNN's last feature map, or pixels into an MLP)
        flat = math.prod(hidden.shape[-rank:])
        hidden = tf.reshape(hidden, tf.concat([tf.shape(hidden)[:-rank], [flat]], axis=0))
    first = len(arch.convs)
    for i in range(first, first + len(arch.hidden)):
        hidden = tf.nn.relu(dense(hidden, weights[2 * i], weights[2 * i + 1]))
    count = first + len(arch.hidden)
    head = dense(hidden, weights[2 * count], weights[2 * count + 1])
    if arch.dueling:
        advantage = dense(hidden, weights[2 * count + 2], weights[2 * count + 3])
        head = head + advantage - tf.reduce_mean(advantage, axis=-1, keepdims=True)
    return head if head.dtype == tf.float32 else tf.cast(head, tf.float32)


def dense(inputs: tf.Tensor, kernel: tf.Tensor, bias: tf.Tensor) -> tf.Tensor:
    """One dense layer of one member, or of members stacked (kernel [K, in, out])."""
    product = tf.matmul(inputs, kernel)
    return add_stacked_bias(product, bias) if bias.shape.rank == 3 else product + bias


@tf.custom_gradient
def add_stacked_bias(values: tf.Tensor, biases: tf.Tensor):
    """values [K, rows, out] + biases [K, 1, out], whose gradient sums the rows as a matmul.

    Autodiff sums a broadcast bias's gradient with a reduction, and XLA's CPU reductions over
    the rows axis are not summed in the same order for one member as for several (measured:
    64 rows of 256 units), so a solo run would part from its population twin. A batched matmul
    sums each member alike whatever K is; two rows of ones keep it off the matrix-vector path,
    which XLA rewrites into that same reduction."""
    def gradient(upstream):
        ones = tf.ones(tf.stack([tf.shape(upstream)[0], 2, tf.shape(upstream)[1]]), upstream.dtype)
        return upstream, tf.matmul(ones, upstream)[:, :1]

    return values + biases, gradient


def stacked_conv(images: tf.Tensor, kernels: tf.Tensor, biases: tf.Tensor, stride: int) -> tf.Tensor:
    """A VALID convolution per member: images [K, B, H, W, C], kernels [K, kh, kw, C, F],
    biases [K, 1, F] -> [K, B, H', W', F]. As patches times the kernel, one batched matmul: conv2d
    takes one kernel for the whole batch, and XLA's CPU convolutions are slow; a matmul per
    member is the same arithmetic (summed in another order than conv2d's, so not its bits)."""
    members, kh, kw, channels, filters = kernels.shape
    height, width = images.shape[2], images.shape[3]
    out_h, out_w = (height - kh) // stride + 1, (width - kw) // stride + 1
    patches = tf.concat([images[:, :, i:i + (out_h - 1) * stride + 1:stride, j:j + (out_w - 1) * stride + 1:stride]
                         for i in range(kh) for j in range(kw)], axis=-1)  # [K, B, H', W', kh * kw * C]
    rows = tf.reshape(patches, [members, -1, kh * kw * channels])
    out = add_stacked_bias(tf.matmul(rows, tf.reshape(kernels, [members, kh * kw * channels, filters])), biases)
    return tf.reshape(out, tf.concat([tf.shape(images)[:2], [out_h, out_w, filters]], axis=0))


class CompiledGreedy:
    """Greedy scores of one member's online net run by TensorFlow, for nets the numpy mirror
    of `policy` does not cover (CNNs, pixels): numpy convolutions would cost milliseconds a step.
    Reads the live variables, which change only in train calls, as the mirror's refresh does."""

    def __init__(self, arch: Architecture, variables: list[tf.Variable], forward: tf.types.experimental.GenericFunction):
        self.n_actions = arch.n_actions
        self.dtype = np.dtype(arch.obs_dtype)
        self.variables = variables
        self.forward = forward

    def scores(self, obs: np.ndarray) -> np.ndarray:
        """[n, *obs_shape] -> Q-values [n, n_actions]."""
        return self.forward(self.variables, tf.constant(np.asarray(obs, self.dtype))).numpy()
