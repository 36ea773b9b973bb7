"""Values the composition root gives the HTTP app, taken by endpoints as typed dependencies.

    INGESTER = Provided[Ingester]("SES event ingester")       # declared by the feature
    IngesterDep = Annotated[Ingester, Depends(INGESTER)]       # what its endpoints take
    INGESTER.provide(app, ingester)                            # done by the composition root

An endpoint names exactly what it needs, with its type, and nothing else of the process.
"""

from __future__ import annotations

from typing import Generic, TypeVar, cast

from fastapi import FastAPI, Request

T = TypeVar("T")


class Provided(Generic[T]):
    def __init__(self, name: str) -> None:
        self.name = name

    def provide(self, app: FastAPI, value: T) -> None:
        if not hasattr(app.state, "provided"):
            app.state.provided = {}
        app.state.provided[self] = value

    # async: FastAPI runs a plain function dependency in a thread, a round trip per request.
    async def __call__(self, request: Request) -> T:
        return self.of(request)

    def of(self, request: Request) -> T:
        """The value itself, for an endpoint that reads it without FastAPI's dependency solver."""
        try:
            return cast(T, request.app.state.provided[self])
        except (AttributeError, KeyError):
            raise RuntimeError(f"the app was not given the {self.name}") from None

    def __repr__(self) -> str:
        return f"Provided({self.name!r})"
