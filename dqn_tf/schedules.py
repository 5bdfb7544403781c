"""Exploration schedule and step-interval bookkeeping (SB3 semantics)."""

from __future__ import annotations


def linear_epsilon(step: int, total: int, fraction: float, initial: float, final: float) -> float:
    """Epsilon falls linearly from `initial` to `final` over the first `fraction` of training."""
    if fraction <= 0:
        return final
    progress = step / (fraction * total)
    return final if progress >= 1 else initial + progress * (final - initial)


def crossings(before: int, after: int, every: int) -> int:
    """How many multiples of `every` the step counter passed going from `before` to `after`."""
    return after // every - before // every


def polyak_coefficient(tau: float, updates: int) -> float:
    """`updates` successive Polyak updates with `tau` and a fixed online net collapse into one.

    Target updates fall between train calls (the online net does not change there), so the
    trainer applies them lazily, once, right before the next train call.
    """
    return 1.0 - (1.0 - tau) ** updates if updates > 0 else 0.0
