"""The HTTP server's own limits, before any request reaches the app (README "Security"):

- the request line and headers together: at most `MAX_HEADER_BYTES`, else 400;
- they must arrive within `HEADER_TIMEOUT_S` of the connection opening (or of the previous
  answer on a kept-alive connection), else the connection is closed. uvicorn has no such
  limit: its keep-alive timer stops at the first byte, so a client that sends a byte now and
  then would hold a connection for ever;
- an idle kept-alive connection is closed after `KEEP_ALIVE_S`.

Bodies are bounded by each route (`web/body.py`); their pace is the client's.

The parser is httptools (llhttp, in C), not h11: at 1,000 clicks/s in one process h11 took
about a quarter of the API's CPU (0.755 ms per click with h11, 0.551 ms with httptools, the
rest alike). httptools has no header-size limit of its own, so the protocol below counts.
"""

from __future__ import annotations

import asyncio
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

MAX_HEADER_BYTES = 16 * 1024
HEADER_TIMEOUT_S = 10.0
KEEP_ALIVE_S = 5


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    header_timeout_s = HEADER_TIMEOUT_S
    max_header_bytes = MAX_HEADER_BYTES

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_deadline: asyncio.TimerHandle | None = None
        self._awaiting_head = True  # the next request's line and headers are not all in
        # Bytes of the request line and headers so far, counted as they arrive: the parser
        # keeps an unfinished header in memory whatever its size and says nothing until it
        # ends. None while no request head is being read.
        self._head_bytes: int | None = None
        self._read_bytes = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_deadline()

    def data_received(self, data: bytes) -> None:
        self._read_bytes = len(data)
        if self._head_bytes is not None:
            self._head_bytes += len(data)
        super().data_received(data)
        if (
            self._head_bytes is not None
            and self._head_bytes > self.max_header_bytes
            and not self.transport.is_closing()
        ):
            self.send_400_response("Request line and headers too large.")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        # Where in this read the request starts is not known: all of it counts, which can only
        # make the limit stricter (and is exact unless requests are pipelined).
        self._head_bytes = self._read_bytes

    def on_headers_complete(self) -> None:
        self._awaiting_head = False
        self._head_bytes = None
        self._disarm_header_deadline()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._awaiting_head = True

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm_header_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_deadline()
        super().connection_lost(exc)

    def _arm_header_deadline(self) -> None:
        self._disarm_header_deadline()
        self._header_deadline = self.loop.call_later(self.header_timeout_s, self._too_slow)

    def _disarm_header_deadline(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _too_slow(self) -> None:
        self._header_deadline = None
        answering = self.cycle is not None and not self.cycle.response_complete
        if self._awaiting_head and not answering and not self.transport.is_closing():
            self.transport.close()


def server_config(app: Any, *, host: str, port: int, **options: Any) -> uvicorn.Config:
    """uvicorn's settings with the limits above."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=GuardedHttpToolsProtocol,
        timeout_keep_alive=KEEP_ALIVE_S,
        log_config=None,
        lifespan="off",
        **options,
    )
