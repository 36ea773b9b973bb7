"""Schemathesis against the OpenAPI document the app serves: requests generated from it, valid
and invalid, on every operation and both databases, and none may get a server error.

Generation is derandomized (a fixed seed) and bounded, so every run sends the same requests."""

from __future__ import annotations

import functools
import json
from typing import Any

import httpx
import hypothesis
import schemathesis
from hypothesis import HealthCheck, Phase
from schemathesis.core.result import Err
from schemathesis.generation.case import Case
from schemathesis.generation.modes import GenerationMode

from ses_sender.composition import Runtime, create_app
from tests.support.settings import API_KEY

EXAMPLES_PER_OPERATION = 8


@functools.cache
def generated_cases(document_text: str) -> list[Case[Any]]:
    """For each operation, requests that fit the document and requests that break it (the
    same document on both backends: generated once per test process)."""
    document = json.loads(document_text)
    schema = schemathesis.openapi.from_dict(document)
    cases: list[Case[Any]] = []
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            raise result.err()  # the document itself is broken
        operation = result.ok()
        declared = document["paths"][operation.path][operation.method]
        for mode in GenerationMode if breakable(declared) else [GenerationMode.POSITIVE]:
            strategy = operation.as_strategy(mode, headers={"x-api-key": API_KEY})

            @hypothesis.settings(
                max_examples=EXAMPLES_PER_OPERATION,
                database=None,
                derandomize=True,
                phases=[Phase.generate],
                suppress_health_check=list(HealthCheck),
                deadline=None,
            )
            @hypothesis.given(strategy)
            def collect(case: Case[Any]) -> None:
                cases.append(case)

            collect()
    return cases


def breakable(operation: dict[str, Any]) -> bool:
    """Whether a request can break what `operation` declares: it has a body, or a parameter
    that is more than any text in a path segment (where any text fits)."""
    return "requestBody" in operation or any(
        parameter["in"] != "path" or parameter["schema"].keys() - {"type", "title"}
        for parameter in operation.get("parameters", ())
    )


async def test_no_generated_request_gets_a_server_error(runtime: Runtime) -> None:
    # An exception the app lets out is a 500 here, so one run reports every case that fails.
    transport = httpx.ASGITransport(app=create_app(runtime), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        document = (await client.get("/openapi.json")).text
        failures = [
            failure for case in generated_cases(document) if (failure := await send(client, case))
        ]
    assert not failures, "\n".join(failures)


async def send(client: httpx.AsyncClient, case: Case[Any]) -> str | None:
    """What went wrong when the app answered `case` with a server error."""
    request = case.as_transport_kwargs(base_url=str(client.base_url))
    response = await client.request(
        request["method"],
        request["url"],
        params=request.get("params"),
        headers=request.get("headers"),
        json=request.get("json"),
        content=request.get("data"),
    )
    if response.status_code < 500:
        return None
    return f"{response.status_code} {case.as_curl_command()}"
