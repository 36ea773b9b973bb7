from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from ses_sender.metrics.dependencies import DatabaseGaugesDep, MayReadMetrics

router = APIRouter(tags=["metrics"])


@router.get(
    "/metrics",
    response_class=Response,
    dependencies=[MayReadMetrics],
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}},
)
async def read_metrics(gauges: DatabaseGaugesDep) -> Response:
    """This process's metrics in the Prometheus text format (see the README's "Metrics").

    Asks for the API key (`x-api-key` or `Authorization: Bearer`) unless
    METRICS_API_KEY_REQUIRED is false."""
    await gauges.refresh_if_stale()
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
