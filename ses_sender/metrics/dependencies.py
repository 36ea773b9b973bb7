from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ses_sender.errors import Unauthorized
from ses_sender.metrics.service import DatabaseGauges
from ses_sender.web.auth import API_KEYS, ApiKeys, HasApiKey
from ses_sender.web.provided import Provided

DATABASE_GAUGES = Provided[DatabaseGauges]("database gauges")
METRICS_KEY_REQUIRED = Provided[bool]("whether /metrics asks for the API key")

DatabaseGaugesDep = Annotated[DatabaseGauges, Depends(DATABASE_GAUGES)]

# Prometheus sends a key as `Authorization: Bearer …` (its `authorization` scrape setting);
# `x-api-key` is taken too, as on every other route.
_BEARER = HTTPBearer(
    auto_error=False, description="One of the keys in the API_KEY setting, for Prometheus."
)


async def _may_read_metrics(
    required: Annotated[bool, Depends(METRICS_KEY_REQUIRED)],
    keys: Annotated[ApiKeys, Depends(API_KEYS)],
    header_key: HasApiKey,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_BEARER)],
) -> None:
    if not required or header_key:
        return
    if bearer is not None and keys.accepts(bearer.credentials):
        return
    raise Unauthorized("Unauthorized: Invalid API key")


MayReadMetrics = Depends(_may_read_metrics)
