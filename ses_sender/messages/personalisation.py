"""A templated message checked when it arrives: each template compiles, and every recipient has
every variable the templates read, found by static analysis once per template and then a set
check per recipient, cheap at 100,000 recipients."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import orjson
from jinja2 import TemplateError

from ses_sender.errors import InvalidInput
from ses_sender.templating import (
    BUILTIN_VARIABLES,
    TemplateKind,
    describe_template_error,
    template_variables,
)


def template_needs(parts: Mapping[TemplateKind, str | None], where: str) -> dict[str, str]:
    """Each variable the templates read that the service does not provide, with the first
    field that reads it; a 400 naming the field for a template that does not compile."""
    needs: dict[str, str] = {}
    for kind, source in parts.items():
        if source is None:
            continue
        try:
            variables = template_variables(source, kind)
        except TemplateError as error:
            raise InvalidInput(f"{where}.{kind.value}: {describe_template_error(error)}") from None
        for name in sorted(variables - BUILTIN_VARIABLES):
            needs.setdefault(name, kind.value)
    return needs


def encode_data(data: Mapping[str, Any]) -> str:
    """Data as stored: JSON text (the caller holds it to MAX_DATA_BYTES, naming the field)."""
    return orjson.dumps(data).decode()


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
