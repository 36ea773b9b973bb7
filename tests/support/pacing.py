"""What pacing is judged by: how many sends any window of time holds."""

from __future__ import annotations


def max_in_any_window(times: list[float], window: float = 1.0) -> int:
    """Largest number of sends in any half-open window [t, t + window).

    A nanosecond of slack absorbs float rounding in the virtual clock's sums.
    """
    times = sorted(times)
    best = 0
    start = 0
    for end, at in enumerate(times):
        while at - times[start] >= window - 1e-9:
            start += 1
        best = max(best, end - start + 1)
    return best
