"""Exploration schedule and step-interval bookkeeping (SB3 semantics)."""

from __future__ import annotations

import numpy as np


def linear_epsilon(step, total: int, fraction, initial, final) -> np.ndarray:
    """Epsilon falls linearly from `initial` to `final` over the first `fraction` of training.

    Elementwise over arrays: one epsilon per population member, each at its own step.
    """
    span = np.asarray(np.multiply(fraction, total, dtype=np.float64))
    progress = np.divide(step, span, out=np.ones_like(span), where=span > 0)
    return np.where(progress >= 1, final, initial + progress * np.subtract(final, initial))


def crossings(before: int, after: int, every: int) -> int:
    """How many multiples of `every` the step counter passed going from `before` to `after`."""
    return after // every - before // every


def polyak_coefficient(tau, updates) -> np.ndarray:
    """`updates` successive Polyak updates with `tau` and a fixed online net collapse into one.

    Target updates fall between train calls (the online net does not change there), so the
    trainer applies them lazily, once, right before the next train call. Elementwise over
    population members.
    """
    return np.where(np.greater(updates, 0), 1.0 - np.power(np.subtract(1.0, tau), updates), 0.0)
