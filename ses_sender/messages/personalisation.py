"""A templated message checked when it arrives: each template compiles, every recipient has
every variable the templates read, found by static analysis once per template and then a set
check per recipient, cheap at 100,000 recipients, and the first recipient's email renders
within the work budget (what fails for one recipient is found before any is stored; what
fails only for some data is found when each is sent)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import orjson
from jinja2 import TemplateError

from ses_sender.errors import InvalidInput
from ses_sender.templating import (
    BUILTIN_VARIABLES,
    RenderError,
    TemplateKind,
    check_renders,
    compile_with_variables,
    describe_template_error,
)

# What orjson, which stores the data, takes: 64-bit integers, signed or not.
_SMALLEST_INTEGER = -(2**63)
_LARGEST_INTEGER = 2**64 - 1


def template_needs(
    parts: Mapping[TemplateKind, str | None], where: str
) -> tuple[dict[str, str], dict[TemplateKind, Any]]:
    """Each variable the templates read that the service does not provide, with the first
    field that reads it, and each template compiled; a 400 naming the field for a template
    that does not compile."""
    needs: dict[str, str] = {}
    compiled: dict[TemplateKind, Any] = {}
    for kind, source in parts.items():
        if source is None:
            continue
        try:
            variables, compiled[kind] = compile_with_variables(source, kind)
        except TemplateError as error:
            raise InvalidInput(f"{where}.{kind.value}: {describe_template_error(error)}") from None
        for name in sorted(variables - BUILTIN_VARIABLES):
            needs.setdefault(name, kind.value)
    return needs, compiled


def check_first_renders(
    compiled: Mapping[TemplateKind, Any], context: Mapping[str, Any], where: str, place: str
) -> None:
    """A 400 naming the field when the templates fail for the first recipient (`place`),
    whose context is `context`."""
    try:
        check_renders(compiled, context)
    except RenderError as error:
        raise InvalidInput(f"{where}.{error}, rendered for {place}") from None


def encode_data(data: Mapping[str, Any], place: Callable[[], str]) -> str:
    """Data as stored: JSON text (the caller holds it to MAX_DATA_BYTES, naming the field);
    a 400 naming the field (`place()`, formatted only then) for an integer JSON cannot store."""
    try:
        return orjson.dumps(data).decode()
    except TypeError:
        raise InvalidInput(
            f"{place()}: integers must lie between {_SMALLEST_INTEGER} and {_LARGEST_INTEGER}"
        ) from None


def check_recipients_have(
    needs: Mapping[str, str],
    shared: Mapping[str, Any],
    own_data: Sequence[Mapping[str, Any]],
    place_of: Callable[[int], str],
    where: str,
) -> None:
    """Every submitted recipient (its own data, in order) has every needed variable, from the
    message's shared data or its own; `place_of` names a recipient by its index."""
    missing_from_shared = needs.keys() - shared.keys()
    if not missing_from_shared:
        return
    for submitted, data in enumerate(own_data):
        if missing_from_shared <= data.keys():
            continue
        name = sorted(missing_from_shared - data.keys())[0]
        raise InvalidInput(
            f"{where}.{needs[name]}: variable {name!r} is missing from {place_of(submitted)} "
            f"(give it in the recipient's data or the message's data)"
        )
