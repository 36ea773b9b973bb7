"""The OpenAPI document, with what FastAPI cannot see for itself: the JSON bodies endpoints read
through `JsonBody` (each model in the components, referenced from its route), and the answer
to bad input, which is a 400 in our error envelope, not FastAPI's 422."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import BaseModel

from ses_sender.web.body import JsonBody

_SCHEMAS = "#/components/schemas/"


class ErrorOut(BaseModel):
    """Every error the API answers."""

    error: str  # what is wrong, naming the field
    path: str
    method: str
    timestamp: str  # RFC 3339, UTC


def install_openapi(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build_openapi(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def build_openapi(app: FastAPI) -> dict[str, Any]:
    document = get_openapi(
        title=app.title,
        version=app.version,
        summary=app.summary,
        description=app.description,
        routes=app.routes,
    )
    schemas: dict[str, Any] = document.setdefault("components", {}).setdefault("schemas", {})
    _add_model(schemas, ErrorOut)
    for route in iter_route_contexts(app.routes):
        if not isinstance(route.original_route, APIRoute) or not route.include_in_schema:
            continue
        body = _json_body(route.dependant)
        for method in route.methods or ():
            operation = document["paths"][route.path_format][method.lower()]
            if body is not None:
                operation["requestBody"] = {
                    "required": body.required,
                    "content": {"application/json": {"schema": _add_model(schemas, body.model)}},
                }
            _bad_input_is_400(operation)
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    return document


def _json_body(dependant: Dependant) -> JsonBody[Any] | None:
    for dependency in dependant.dependencies:
        if isinstance(dependency.call, JsonBody):
            return dependency.call
        if (found := _json_body(dependency)) is not None:
            return found
    return None


def _add_model(schemas: dict[str, Any], model: type[BaseModel]) -> dict[str, str]:
    """Put `model` (and what it refers to) in the components; a reference to it."""
    schema = model.model_json_schema(ref_template=_SCHEMAS + "{model}")
    for name, definition in schema.pop("$defs", {}).items():
        schemas.setdefault(name, definition)
    schemas.setdefault(model.__name__, schema)
    return {"$ref": _SCHEMAS + model.__name__}


def _bad_input_is_400(operation: dict[str, Any]) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    responses.pop("422", None)
    if operation.get("requestBody") or operation.get("parameters"):
        responses.setdefault(
            "400",
            {
                "description": "The request is not valid: `error` names the field.",
                "content": {"application/json": {"schema": {"$ref": _SCHEMAS + "ErrorOut"}}},
            },
        )
