"""Request bodies: read with a ceiling (never buffering more than it), parsed and validated in
one pass; any problem is a 400 (413 for size) that names the field.

Every JSON document from outside is parsed here, by pydantic's parser: nesting is bounded (at
most 200 levels deep) and numbers too (at most 4,300 digits), strings must be valid Unicode
(no lone surrogates), and no string may hold NUL, which PostgreSQL cannot store.

`JsonBody(Model, max_bytes=...)` is the dependency an endpoint takes its JSON body through; the
OpenAPI document shows `Model` as the route's request body (see `openapi.py`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError
from pydantic_core import from_json
from starlette.requests import ClientDisconnect

from ses_sender.errors import InvalidInput, PayloadTooLarge, describe_validation_error
from ses_sender.text import NUL

ModelT = TypeVar("ModelT", bound=BaseModel)


async def read_body(request: Request, limit: int) -> bytes:
    too_large = PayloadTooLarge(f"request body: at most {limit} bytes")
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise too_large
    body = bytearray()
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise too_large
    except ClientDisconnect:
        # The client left, or the server cut off a body too slow (web/server.py): nobody is
        # there to read an answer, and it is no error of ours to log with a traceback.
        raise InvalidInput("request body: the connection closed before it was complete") from None
    return bytes(body)


def load_json(document: str | bytes) -> Any:
    """A JSON document, parsed within the bounds above; ValueError when it is not one."""
    return from_json(document)


def parse_json(body: bytes, model: type[ModelT]) -> ModelT:
    """A JSON object validated as `model`, within the bounds above."""
    try:
        value = model.model_validate_json(body)
    except ValidationError as error:
        first = error.errors()[0]
        if first["type"] == "json_invalid":
            detail = str(first["msg"]).removeprefix("Invalid JSON: ")
            raise InvalidInput(f"invalid request body: {detail}") from None
        if first["type"] == "model_type" and not first["loc"]:
            raise InvalidInput("invalid request body: expected a JSON object") from None
        raise InvalidInput(describe_validation_error(first)) from None
    # In valid JSON a NUL can only be written as this escape; the walk finds whose it is.
    if b"\\u0000" in body and (field := field_holding_nul(value.model_dump(by_alias=True))):
        raise InvalidInput(f"{field}: must not contain the NUL character")
    return value


def field_holding_nul(value: Any, where: str = "") -> str | None:
    """Where in a parsed JSON document (`where` names the document) the first NUL is."""
    if isinstance(value, str):
        return (where or "body") if NUL in value else None
    if isinstance(value, dict):
        children = ((f"{where}.{key}" if where else str(key), item) for key, item in value.items())
    elif isinstance(value, list):
        children = ((f"{where}[{index}]", item) for index, item in enumerate(value))
    else:
        return None
    for path, item in children:
        if (found := field_holding_nul(item, path)) is not None:
            return found
    return None


@dataclass(frozen=True, slots=True)
class JsonDocument(Generic[ModelT]):
    """A parsed body and its bytes, for endpoints that fingerprint what they were sent."""

    value: ModelT
    raw: bytes


class JsonBody(Generic[ModelT]):
    """The dependency: `body: Annotated[Model, Depends(JsonBody(Model, max_bytes=...))]`.

    `required=False`: the body may be left out, and an empty one reads as `{}`. `raw=True`: the
    endpoint gets a `JsonDocument` (the model and the bytes).
    """

    def __init__(
        self, model: type[ModelT], *, max_bytes: int, required: bool = True, raw: bool = False
    ) -> None:
        self.model = model
        self.max_bytes = max_bytes
        self.required = required
        self._raw = raw

    async def __call__(self, request: Request) -> Any:
        body = await read_body(request, self.max_bytes)
        if not body.strip():
            if self.required:
                raise InvalidInput("invalid request body: it is empty; send a JSON object")
            body = b"{}"
        value = parse_json(body, self.model)
        return JsonDocument(value, body) if self._raw else value
