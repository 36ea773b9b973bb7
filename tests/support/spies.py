"""A spy on one async method of one object: for a test that must know a loop has gone round
(looked for work, checked a pause) before it asserts that nothing happened meanwhile.

Waiting until the loop has gone round is a condition; sleeping "long enough" is a guess.
"""

from __future__ import annotations

import pytest


class Calls:
    """The calls made to the method: their arguments as they start, their results as they end."""

    def __init__(self) -> None:
        self.started: list[tuple[tuple[object, ...], dict[str, object]]] = []
        self.returned: list[object] = []


def spy(monkeypatch: pytest.MonkeyPatch, target: object, name: str) -> Calls:
    """Wrap `target.name` (an async method) for this test, recording its calls."""
    calls = Calls()
    original = getattr(target, name)

    async def recorded(*args: object, **kwargs: object) -> object:
        calls.started.append((args, kwargs))
        result = await original(*args, **kwargs)
        calls.returned.append(result)
        return result

    monkeypatch.setattr(target, name, recorded)
    return calls
