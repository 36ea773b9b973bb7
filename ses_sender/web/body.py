"""Reading a request body with a ceiling (never buffering more than that), and its JSON."""

from __future__ import annotations

import json
from typing import TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError

from ses_sender.errors import InvalidInput, PayloadTooLarge, describe_validation_error

ModelT = TypeVar("ModelT", bound=BaseModel)


async def read_body(request: Request, limit: int) -> bytes:
    too_large = PayloadTooLarge(f"request body: at most {limit} bytes")
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise too_large
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise too_large
    return bytes(body)


def parse_json_body(body: bytes, model: type[ModelT]) -> ModelT:
    """A JSON object validated as `model`; any problem is a 400 naming the field."""
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InvalidInput(f"invalid request body: {error}") from None
    if not isinstance(document, dict):
        raise InvalidInput("invalid request body: expected a JSON object")
    try:
        return model.model_validate(document)
    except ValidationError as error:
        raise InvalidInput(describe_validation_error(error.errors()[0])) from None
