"""A stand-in for `dqn_tf.train_population` (no TensorFlow), messy where the real one is messy
and still predictable, for the driver's orchestration tests.

Where it behaves like the real trainer:
- Counters advance by `n_envs` from a phase of `seed % n_envs`, so members sit at different,
  unaligned counters (1001, 5004, ...). An evaluation is labelled with the `eval_freq` boundary
  it belongs to (`step`) and carries the member's real counter (`env_steps`); the last one, once
  the counter reaches `total_timesteps`, is labelled `total_timesteps` with `final: True`.
- Members run at different speeds (member k takes 1 + 0.1 * (k % 3) times as long per step) and
  member 1's events reach the parent late (1.5 evaluations behind its own counter), so a member's
  evaluation can arrive after another member's later one.
- Training episodes have varying lengths; a stop request takes effect at the member's next event
  (stops arrive between evaluations, whenever the parent decides).
- With a `checkpoint_dir`, the population is saved (JSON) after every delivered evaluation and a
  run that finds a save resumes after it (`resumed_from_step`); `timings` carries
  `checkpoint_saves`, `checkpoint_seconds` and `checkpoint_bytes` (the last save) for the task.
- It refuses populations whose members differ in a shape-changing field (`check_population`).

Predictable: mean return = (1000 * learning_rate + luck) * step / total_timesteps + seed (step =
the label), where `luck(seed, max_grad_norm)` in [-50, 50) is a config's luck on a seed, as a
real trainer's returns depend on seed and config together (so a config's rank on its tuning
seeds need not be its rank on held-out seeds); 0 at the default max_grad_norm (10).
Hooks: `gamma == 0.5` diverges (alone) at its first evaluation; `exploration_fraction == 0.5`
raises a plain error; `exploration_fraction == 0.25` crashes the process (exit 3).
Real time: member 0 takes `train_freq` ms per `eval_freq` env steps.
"""

from __future__ import annotations

import json
import math
import os
import time
import zlib
from pathlib import Path

from dqn_tf.config import check_population
from dqn_tf.result import TrainResult

LATE_MEMBER = 1
LATE_BY_EVALS = 1.5


def crossing(target: int, phase: int, n_envs: int) -> int:
    """The first counter value >= target of a member whose counter is phase + m * n_envs."""
    return phase + max(0, math.ceil((target - phase) / n_envs)) * n_envs


def timeline(config, member: int) -> list[dict]:
    """Member's evaluations in order: label, real counter, when (in env-step units) it arrives."""
    total, freq, n_envs = config.total_timesteps, config.eval_freq, config.n_envs
    phase = config.seed % n_envs
    speed = 1 + 0.1 * (member % 3)
    delay = LATE_BY_EVALS * freq if member == LATE_MEMBER else 0
    evals, label = [], 0
    for boundary in range(freq, total, freq) if freq else ():
        counter = crossing(boundary, phase, n_envs)
        if counter >= total:
            break
        if (counter // freq) * freq > label:  # a wide vector step crosses several boundaries: the last counts
            label = (counter // freq) * freq
            evals.append({"step": label, "env_steps": counter, "final": False})
    evals.append({"step": total, "env_steps": crossing(total, phase, n_envs), "final": True})
    for event in evals:
        event["at"] = event["env_steps"] * speed + delay
    return evals


def luck(seed: int, max_grad_norm: float) -> float:
    """A config's luck on a seed: a hash of both, in [-50, 50); none at max_grad_norm 10."""
    if max_grad_norm == 10:
        return 0.0
    return 100 * (zlib.crc32(f"{seed}/{float(max_grad_norm)!r}".encode()) % 1000 / 1000 - 0.5)


def episodes_until(counter: int, seed: int) -> list[dict]:
    """Training episodes of varying length (8..24 steps) that ended by `counter`."""
    episodes, step = [], 0
    while True:
        length = 8 + (7 * len(episodes) + 3 * seed) % 17
        if step + length > counter:
            return episodes
        step += length
        episodes.append({"episode": len(episodes), "step": step, "return": float(length), "length": length})


def train_population(configs, on_event=None, checkpoint_dir=None):
    check_population(configs)
    started = time.perf_counter()
    first = configs[0]
    unit = first.train_freq / 1000 / max(1, first.eval_freq)  # seconds per env step of member 0
    members = [{"env_steps": 0, "evals": [], "stop": None, "diverged": False} for _ in configs]
    timings = {"checkpoint_saves": 0, "checkpoint_seconds": 0.0, "checkpoint_bytes": 0}
    folder = Path(checkpoint_dir) if checkpoint_dir else None
    resumed = restore(folder, members)
    schedule = sorted(
        ({**event, "member": k} for k, config in enumerate(configs) for event in timeline(config, k)),
        key=lambda event: (event["at"], event["member"]),
    )
    for item in schedule:
        k, config, member = item["member"], configs[item["member"]], members[item["member"]]
        if member["stop"] is not None or item["env_steps"] <= member["env_steps"]:
            continue  # stopped, or done before the checkpoint this run resumed from
        time.sleep(max(0.0, started + item["at"] * unit - time.perf_counter()))
        if config.exploration_fraction == 0.5:
            raise ValueError("fake trainer bug")
        if config.exploration_fraction == 0.25:
            os._exit(3)
        member["env_steps"] = item["env_steps"]
        if config.gamma == 0.5:
            member["diverged"], member["stop"] = True, f"diverged: loss became nan at step {item['step']}"
            continue
        mean = (1000 * config.learning_rate + luck(config.seed, config.max_grad_norm)) * item["step"] \
            / config.total_timesteps + config.seed
        event = {"event": "eval", "member": k, "step": item["step"], "env_steps": item["env_steps"],
                 "final": item["final"], "mean_return": mean, "std_return": 1.0, "min_return": mean - 1,
                 "max_return": mean + 1, "episodes": len(episodes_until(item["env_steps"], config.seed))}
        member["evals"].append(event)
        if folder is not None:
            save(folder, members, timings)
        if on_event is not None and (answer := on_event(event)):
            member["stop"] = str(answer)
        if all(m["stop"] is not None for m in members):
            break
    wall = time.perf_counter() - started
    return [
        TrainResult(
            config=config.to_dict(), final_eval_mean=m["evals"][-1]["mean_return"] if m["evals"] else None,
            final_eval_std=1.0, evals=m["evals"], episodes=episodes_until(m["env_steps"], config.seed),
            env_steps=m["env_steps"], gradient_steps=m["env_steps"] // 4, wall_seconds=wall,
            steps_per_second=m["env_steps"] / wall, replicas=1, devices=["/cpu:0"],
            stopped_early=m["stop"] is not None, stop_reason=m["stop"], member=k, diverged=m["diverged"],
            resumed_from_step=resumed, timings=dict(timings),
        )
        for k, (config, m) in enumerate(zip(configs, members))
    ]


def save(folder: Path, members: list[dict], timings: dict) -> None:
    began = time.perf_counter()
    folder.mkdir(parents=True, exist_ok=True)
    text = json.dumps({"members": [{"env_steps": m["env_steps"], "evals": m["evals"]} for m in members]})
    (folder / "state.json").write_text(text)
    timings["checkpoint_saves"] += 1
    timings["checkpoint_seconds"] += time.perf_counter() - began
    timings["checkpoint_bytes"] = len(text)


def restore(folder: Path | None, members: list[dict]) -> int | None:
    """Members' counters and evaluations from a save in `folder`; the step resumed from."""
    if folder is None or not (folder / "state.json").exists():
        return None
    saved = json.loads((folder / "state.json").read_text())["members"]
    if len(saved) != len(members):
        raise ValueError(f"checkpoint_dir = '{folder}' holds {len(saved)} member(s), the run has {len(members)}")
    for member, state in zip(members, saved):
        member.update(env_steps=state["env_steps"], evals=state["evals"])
    return max((e["step"] for m in members for e in m["evals"]), default=0)
