"""The service's HTTP API as the command line calls it: the key, retries of what is safe to
retry, and errors a person can act on."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

import httpx

from ses_sender.stats.schemas import TopicStats

ATTEMPTS = 3  # per call: a dropped connection or a 5xx is tried again, with the same key
RETRY_PAUSE_S = 1.0
TIMEOUT_S = 120.0  # a chunk of 100,000 recipients is stored in a few seconds on a busy server


class ServiceProblem(Exception):
    """The service could not be reached, or refused the call; the message says which."""


class ServiceApi:
    def __init__(self, base_url: str, api_key: str | None) -> None:
        self.base_url = base_url.rstrip("/")
        headers = {"x-api-key": api_key} if api_key else {}
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=TIMEOUT_S)

    def close(self) -> None:
        self._http.close()

    def queue(self, body: bytes, idempotency_key: str) -> dict[str, Any]:
        """POST /v1/messages; the same key with the same body is answered from the first time."""
        headers = {"Content-Type": "application/json", "Idempotency-Key": idempotency_key}
        answer: dict[str, Any] = self._call("POST", "/v1/messages", content=body, headers=headers)
        return answer

    def topic(self, topic_id: str) -> TopicStats:
        # Topic ids may hold `/` (the route takes the rest of the path); `?`, `#` and `%` not.
        path = "/v1/topics/" + quote(topic_id, safe="/")
        return TopicStats.model_validate(self._call("GET", path))

    def _call(self, method: str, path: str, **options: Any) -> Any:
        attempt = 1
        while True:
            try:
                response = self._http.request(method, path, **options)
            except httpx.TransportError as error:
                if attempt >= ATTEMPTS:
                    reason = str(error) or type(error).__name__
                    raise ServiceProblem(
                        f"cannot reach the service at {self.base_url}: {reason}"
                    ) from None
            else:
                if response.status_code < 500 or attempt >= ATTEMPTS:
                    return _answer(response)
            time.sleep(RETRY_PAUSE_S * attempt)
            attempt += 1


def _answer(response: httpx.Response) -> Any:
    if response.is_success:
        return response.json()
    try:
        message = response.json()["error"]
    except (ValueError, KeyError, TypeError):
        message = response.text[:500] or response.reason_phrase
    raise ServiceProblem(f"the service answered {response.status_code}: {message}")
