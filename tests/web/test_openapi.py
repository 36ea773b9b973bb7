"""The OpenAPI document: valid, self-contained, and saying what the API really answers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
from openapi_spec_validator import validate


def references(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from references(value)
    elif isinstance(node, list):
        for item in node:
            yield from references(item)


def resolve(document: dict[str, Any], reference: str) -> Any:
    assert reference.startswith("#/"), reference
    node: Any = document
    for part in reference.removeprefix("#/").split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


async def test_the_document_is_valid_and_every_reference_resolves(
    client: httpx.AsyncClient,
) -> None:
    document = (await client.get("/openapi.json")).json()

    validate(document)
    found = set(references(document))
    assert found
    for reference in found:
        assert resolve(document, reference) is not None, reference


async def test_the_document_declares_the_key_and_the_400s(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()

    schemes = document["components"]["securitySchemes"]
    assert {"type": "apiKey", "in": "header", "name": "x-api-key"} in [
        {key: scheme.get(key) for key in ("type", "in", "name")} for scheme in schemes.values()
    ]
    operations = [op for path in document["paths"].values() for op in path.values()]
    assert not [op["operationId"] for op in operations if "422" in op["responses"]]
    messages = document["paths"]["/v1/messages"]["post"]
    assert messages["requestBody"]["content"]["application/json"]["schema"]
    assert messages["responses"]["400"]
