"""The language of a page a person reads: the first of ours the browser's `Accept-Language`
asks for, by its weights (RFC 9110, section 12.5.4), else the first of ours."""

from __future__ import annotations

from collections.abc import Sequence


def preferred_language(accept_language: str | None, supported: Sequence[str]) -> str:
    """`supported` are primary language tags ("en", "ko"), the default first."""
    best, best_weight = supported[0], 0.0
    for position, item in enumerate((accept_language or "").split(",")):
        tag, _, parameters = item.strip().partition(";")
        primary = tag.strip().lower().partition("-")[0]
        weight = _weight(parameters)
        # Equal weights: the earlier entry wins (it was listed first).
        if primary in supported and weight > best_weight:
            best, best_weight = primary, weight
        if position > 50:  # a header longer than any browser sends: stop reading
            break
    return best


def _weight(parameters: str) -> float:
    for parameter in parameters.split(";"):
        name, _, value = parameter.strip().partition("=")
        if name.strip().lower() == "q":
            try:
                weight = float(value)
            except ValueError:
                return 0.0
            return weight if 0.0 <= weight <= 1.0 else 0.0
    return 1.0
