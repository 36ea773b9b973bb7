"""Exponential backoff with jitter: how long to wait before trying something again."""

from __future__ import annotations

import random

_MAX_DOUBLINGS = 62  # far beyond any cap, and a float still


def backoff_s(attempts: int, *, base_s: float, cap_s: float, rng: random.Random) -> float:
    """After `attempts` failed tries: uniform in [ceiling/2, ceiling], the ceiling doubling from
    `base_s` up to `cap_s`. The jitter keeps things that failed together from being retried
    together."""
    doublings = min(max(attempts, 1) - 1, _MAX_DOUBLINGS)
    ceiling = min(cap_s, base_s * 2.0**doublings)
    return rng.uniform(ceiling / 2, ceiling)
