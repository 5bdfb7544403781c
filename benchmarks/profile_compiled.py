"""Where a compiled-loop env step's time goes, and how close a gradient step comes to the core.

    python benchmarks/profile_compiled.py                        # CartPole (b): train_freq 4, 1 gradient step
    python benchmarks/profile_compiled.py --env MinAtar/Breakout-v1
    python benchmarks/profile_compiled.py --core 1 --iterations 4000
    python benchmarks/profile_compiled.py --denormals 0     # CartPole (b) seed 0, which diverges
    python benchmarks/profile_compiled.py --rate-of '{"env_id": "CartPole-v1", ...}'   # one JSON line

One process pinned to one core with 1+1 TensorFlow threads; times are its CPU time (equal to
wall on a quiet core, and without what a busy machine's other processes take). Each piece of the compiled program's
env step and training phase runs alone inside its own XLA while loop of `--iterations`
iterations (so what is timed is the piece plus one loop iteration, never Python dispatch);
then the whole program runs a chunk of the real schedule, and the pieces are set beside it.
The core's rate is measured in the same run: a single-thread matmul chain of the MLP's own
shape (batch x hidden @ hidden x hidden) and of 1024-squares, XLA and plain TensorFlow.
Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

ONE_CORE_ENV = {"TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
CARTPOLE_B = {
    "env_id": "CartPole-v1", "total_timesteps": 50_000, "learning_rate": 2.3e-3, "batch_size": 64,
    "buffer_size": 100_000, "learning_starts": 1000, "gamma": 0.99, "target_update_interval": 10,
    "train_freq": 4, "gradient_steps": 1, "exploration_fraction": 0.16, "exploration_final_eps": 0.04,
    "net_arch": [256, 256], "eval_freq": 5000, "n_eval_episodes": 10,
}
MINATAR_B = {
    "env_id": "MinAtar/Breakout-v1", "total_timesteps": 100_000, "learning_starts": 5000, "buffer_size": 100_000,
    "batch_size": 32, "train_freq": 4, "gradient_steps": 1, "target_update_interval": 1000,
    "learning_rate": 1e-3, "exploration_fraction": 0.2, "exploration_final_eps": 0.05,
}


def gradient_step_flops(arch, batch: int, double_dqn: bool) -> int:
    """Multiply-adds x 2 of one gradient step: forward passes (online on obs, target on next obs,
    online on next obs for double DQN), the backward pass (weight gradients of every layer,
    input gradients of all but the first)."""
    layers = []  # multiply-adds per example, per layer
    if arch.convs:
        height, width, channels = arch.obs_shape
        for filters, kernel, stride in arch.convs:
            height, width = (height - kernel) // stride + 1, (width - kernel) // stride + 1
            layers.append(height * width * kernel * kernel * channels * filters)
            channels = filters
    dense = [shape for name, shape in arch.kernel_shapes() if not name.startswith("conv")]
    layers += [math.prod(shape) for shape in dense]
    forward = sum(layers)
    passes = 3 if double_dqn else 2
    return 2 * batch * (passes * forward + forward + sum(layers[1:]))


def timed_loop(body: Callable, iterations: int) -> float:
    """CPU seconds per iteration of an XLA while loop running `body(i)` (after one compile run).
    What the body returns is summed into the loop's carry, so XLA cannot drop it as unused."""
    import tensorflow as tf

    def sink(value) -> tf.Tensor:
        values = [] if value is None else tf.nest.flatten(value)
        return tf.add_n([tf.reduce_sum(tf.cast(v, tf.float32)) for v in values] + [tf.constant(0.0)])

    @tf.function(jit_compile=True)
    def run(n):
        return tf.while_loop(lambda i, total: i < n, lambda i, total: (i + 1, total + sink(body(i))),
                             [tf.constant(0), tf.constant(0.0)])

    run(tf.constant(2))
    started = time.process_time()
    run(tf.constant(iterations))[1].numpy()
    return (time.process_time() - started) / iterations


def core_rate(batch: int, hidden: int, iterations: int) -> dict[str, float]:
    """GFLOP/s of a single-thread matmul chain [batch, hidden] @ [hidden, hidden] (an orthogonal
    matrix, so values neither blow up nor vanish), XLA and plain TensorFlow, and of 1024-squares."""
    import numpy as np
    import tensorflow as tf

    rates = {}
    for rows, cols, label in ((batch, hidden, f"{batch}x{hidden} @ {hidden}x{hidden}"), (1024, 1024, "1024-squares")):
        q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(cols, cols)))
        weights = tf.Variable(q.astype(np.float32))
        x = tf.Variable(np.random.default_rng(1).normal(size=(rows, cols)).astype(np.float32))
        count = iterations if rows < 1024 else max(iterations // 100, 20)
        flops = 2 * rows * cols * cols
        for xla in (True, False):
            @tf.function(jit_compile=xla)
            def chain(n, weights=weights, x=x):
                return tf.while_loop(lambda i, h: i < n, lambda i, h: (i + 1, tf.matmul(h, weights)), [0, x.read_value()])

            chain(tf.constant(2))
            started = time.process_time()
            chain(tf.constant(count))[1].numpy()
            rates[f"{label}, {'XLA' if xla else 'TF'}"] = flops * count / (time.process_time() - started) / 1e9
    return rates


def gradient_step_rate(config: dict, iterations: int) -> dict[str, float]:
    """The compiled program's gradient step for `config` alone in an XLA loop, against the core's
    rate on the MLP's own shape, measured in this process: {ms, gflops, core_gflops, mflop}."""
    import tensorflow as tf

    from dqn_tf.compiled_program import program_for
    from dqn_tf.config import TrainConfig
    from dqn_tf.graph_envs import graph_env

    config = TrainConfig.from_dict({**config, "loop": "compiled"})
    program = program_for([config], graph_env(config.env_id), "/cpu:0")
    warm = config.learning_starts + 4 * config.train_freq * config.n_envs
    program.advance(warm)
    flops = gradient_step_flops(program.arch, config.batch_size, config.double_dqn)
    hidden = 256 if program.arch.convs else max(program.arch.hidden)
    core = core_rate(config.batch_size, hidden, iterations)[f"{config.batch_size}x{hidden} @ {hidden}x{hidden}, XLA"]
    seconds = timed_loop(lambda i: program._gradient_step(tf.constant(warm, tf.int64), i), iterations // 4)
    return {"ms": seconds * 1e3, "gflops": flops / seconds / 1e9, "core_gflops": core, "mflop": flops / 1e6}


def denormals(config: dict, seed: int) -> None:
    """A whole run of `config` on the program, chunk by chunk: speed early and late, and how many
    subnormal floats its variables hold at the end (a diverging net's tiny gradients and Adam
    moments could make the CPU take its slow path; flush-to-zero would then pay)."""
    import numpy as np

    from dqn_tf.compiled_program import program_for
    from dqn_tf.config import TrainConfig
    from dqn_tf.graph_envs import graph_env

    config = TrainConfig.from_dict({**config, "loop": "compiled", "seed": seed})
    program = program_for([config], graph_env(config.env_id), "/cpu:0")
    chunk, total = config.total_timesteps // 100, config.total_timesteps
    program.advance(chunk)
    rates = []
    for until in range(2 * chunk, total + 1, chunk):
        started = time.process_time()
        program.advance(until)
        rates.append((time.process_time() - started) / chunk * 1e6)
    tenth = len(rates) // 10
    print(f"\n{config.env_id} seed {seed}, whole run in chunks of {chunk}: first tenth {np.median(rates[:tenth]):.1f} "
          f"us/step, last tenth {np.median(rates[-tenth:]):.1f} us/step; final mean Q {float(program.q_mean[0]):.3g}")
    tiny = np.finfo(np.float32).tiny
    for name, variable in program.variables().items():
        values = variable.numpy()
        if values.dtype == np.float32:
            subnormal = int(((values != 0) & (np.abs(values) < tiny)).sum())
            if subnormal or name.startswith(("online", "adam")):
                print(f"  {name:18s} {values.size:9d} values, {subnormal} subnormal")


def profile(config: dict, iterations: int) -> None:
    import numpy as np
    import tensorflow as tf

    from dqn_tf.compiled_program import program_for, two_wide
    from dqn_tf.config import TrainConfig
    from dqn_tf.counter_rng import ACT, RESET, STEP, uniform
    from dqn_tf.graph_envs import graph_env

    config = TrainConfig.from_dict({**config, "loop": "compiled"})
    env = graph_env(config.env_id)
    program = program_for([config], env, "/cpu:0")
    n = config.n_envs
    # replay filled, exploration at its final epsilon, a few training phases done
    warm = max(config.learning_starts, int(config.exploration_fraction * config.total_timesteps)) + 4 * config.train_freq * n
    program.advance(warm)
    arch = program.arch
    flops = gradient_step_flops(arch, config.batch_size, config.double_dqn)
    hidden = 256 if arch.convs else max(arch.hidden)  # the core rate on the MLP shape (CNNs: the same)
    print(f"{config.env_id}: net {arch.net_arch}, batch {config.batch_size}, train_freq {config.train_freq}, "
          f"gradient_steps {config.gradient_steps}, n_envs {n}; {flops / 1e6:.1f} MFLOP per gradient step")
    rates = core_rate(config.batch_size, hidden, iterations)
    for label, rate in rates.items():
        print(f"  core rate, one thread, {label:32s} {rate:6.1f} GFLOP/s")
    core = rates[f"{config.batch_size}x{hidden} @ {hidden}x{hidden}, XLA"]

    saved = program.arrays()
    steps = tf.constant(warm, tf.int64)
    obs = program.obs.read_value()
    at = lambda i: [steps + tf.cast(i, tf.int64)]
    varying = lambda i: tf.where(tf.equal(i, -1), tf.zeros_like(obs), obs)  # not hoisted out of the loop
    parts: dict[str, Callable] = {
        "loop iteration alone": lambda i: None,
        "random draws (act)": lambda i: uniform(program.keys, ACT, at(i), [n, 2]),
        "greedy forward pass": lambda i: program._greedy(varying(i)),
        "env step + observe": lambda i: env.observe(env.step(program.state, two_wide(tf.fill([1, n], i % env.n_actions), n),
                                                             two_wide(program._step_draws(STEP, at(i), n), n))[0]),
        "reset draws + restart": lambda i: env.restart(
            program.state, two_wide(uniform(program.keys, RESET, at(i), [n, env.reset_draws], tf.float64), n)),
        "replay write": lambda i: program._store(varying(i), tf.fill([1, n], i % 2), tf.ones([1, n]), obs,
                                                 tf.zeros([1, n])),
        "whole env step (_env_step)": lambda i: program._env_step(),
    }
    print(f"\nenv step pieces (us per iteration of an XLA while loop, {iterations} iterations):")
    costs = {}
    for name, body in parts.items():
        costs[name] = timed_loop(body, iterations) * 1e6
        print(f"  {name:32s} {costs[name]:8.2f} us")

    grads = iterations // 4
    gradient_step = timed_loop(lambda i: program._gradient_step(steps, i), grads)
    def train_phase(i):  # each phase at the next train boundary, so it samples anew (nothing is hoisted)
        program.steps.assign_add(config.train_freq * n)
        program._train_phase(tf.constant(True))

    train_phase = timed_loop(train_phase, grads)
    achieved = flops / gradient_step / 1e9
    print(f"\ntraining ({grads} iterations):")
    print(f"  gradient step (sample, loss, backward, clip, Adam) {gradient_step * 1e3:7.3f} ms = {achieved:5.1f} GFLOP/s "
          f"= {achieved / core:.0%} of the core's {core:.0f} GFLOP/s on {config.batch_size}x{hidden} @ {hidden}x{hidden}")
    print(f"  training phase ({config.gradient_steps} steps + target blend + stats) {train_phase * 1e3:7.3f} ms")

    program.load(saved)  # back where the pieces started
    chunk = max(config.total_timesteps // 100, config.train_freq * n)
    until = int(program.steps.numpy()) + 10 * chunk
    started = time.process_time()
    while int(program.steps.numpy()) < until:
        program.advance(int(program.steps.numpy()) + chunk)
    whole = (time.process_time() - started) / (10 * chunk) * 1e6
    per_step = costs["whole env step (_env_step)"] + train_phase * 1e6 / (config.train_freq * n)
    print(f"\nthe program on the real schedule, chunks of {chunk} steps (epsilon {float(program._epsilon(until)[0]):.2f}):")
    print(f"  {whole:8.2f} us per env step; pieces: env step {costs['whole env step (_env_step)']:.2f} us + "
          f"training phase / {config.train_freq * n} = {per_step:.2f} us; the rest is chunk overhead and logging")
    print(f"  arithmetic share: {flops * config.gradient_steps / (config.train_freq * n) / (core * 1e9) * 1e6:.2f} us "
          "per env step of gradient arithmetic at the core's rate")
    _ = np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="CartPole-v1", help="CartPole-v1 (config b) or MinAtar/Breakout-v1")
    parser.add_argument("--core", type=int, default=0)
    parser.add_argument("--iterations", type=int, default=4000)
    parser.add_argument("--rate-of", help="a JSON config: print only its gradient step rate, as JSON")
    parser.add_argument("--denormals", type=int, metavar="SEED",
                        help="a whole run of the config with this seed: speed early and late, subnormal values")
    args = parser.parse_args()
    os.sched_setaffinity(0, {args.core})
    os.environ.update(ONE_CORE_ENV)
    if args.rate_of:
        print("RESULT " + json.dumps(gradient_step_rate(json.loads(args.rate_of), args.iterations)))
        return
    print(f"core {args.core}, 1+1 TF threads, load average {Path('/proc/loadavg').read_text().split()[0]}")
    config = CARTPOLE_B if args.env == "CartPole-v1" else {**MINATAR_B, "env_id": args.env}
    if args.denormals is not None:
        return denormals(config, args.denormals)
    profile(config, args.iterations)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # dqn_tf from this checkout
    main()
