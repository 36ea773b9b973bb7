"""The HTTP server's own limits, before any request reaches the app (README "Security"):

- the request line and headers together: at most `MAX_HEADER_BYTES`, else 400, however the
  bytes arrive (in one read or in many);
- they must arrive within `HEADER_TIMEOUT_S` of the connection opening (or of the previous
  answer on a kept-alive connection), else the connection is closed. uvicorn has no such
  limit: its keep-alive timer stops at the first byte, so a client that sends a byte now and
  then would hold a connection for ever;
- a request body must bring at least `BODY_WINDOW_BYTES` in every `BODY_WINDOW_S`, else 408
  and the connection is closed: the same dribbling, after the headers;
- an idle kept-alive connection is closed after `KEEP_ALIVE_S`;
- no WebSockets: no route speaks them, and an upgrade to one was answered 403 with an empty
  body. A request asking for one is an ordinary request (most often a 404 from the app).

Bodies are bounded in size by each route (`web/body.py`). The answers given here are the app's
JSON error envelope, with `nosniff`, as every other answer.

The parser is httptools (llhttp, in C), not h11: at 1,000 clicks/s in one process h11 took
about a quarter of the API's CPU (0.755 ms per click with h11, 0.551 ms with httptools, the
rest alike). httptools has no header-size limit of its own, so the protocol below counts.
"""

from __future__ import annotations

import asyncio
import json
from http import HTTPStatus
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from ses_sender.web.errors import error_document

MAX_HEADER_BYTES = 16 * 1024
HEADER_TIMEOUT_S = 10.0
# 16 KiB/s: the largest body a route takes (64 MiB) then has about 70 minutes.
BODY_WINDOW_S = 10.0
BODY_WINDOW_BYTES = 160 * 1024
KEEP_ALIVE_S = 5

_HEAD_TOO_LARGE = f"request line and headers: at most {MAX_HEADER_BYTES} bytes"


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    header_timeout_s = HEADER_TIMEOUT_S
    max_header_bytes = MAX_HEADER_BYTES
    body_window_s = BODY_WINDOW_S
    body_window_bytes = BODY_WINDOW_BYTES

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_deadline: asyncio.TimerHandle | None = None
        self._awaiting_head = True  # the next request's line and headers are not all in
        # Bytes of the request line and headers so far, counted as they arrive: the parser
        # keeps an unfinished header in memory whatever its size and says nothing until it
        # ends. None while no request head is being read.
        self._head_bytes: int | None = None
        self._read_bytes = 0
        # The request head as parsed (its line and headers), to count a head that came whole.
        self._parsed_head_bytes = 0
        self._head_too_large = False
        self.url = b""  # uvicorn sets it when a request begins; an answer may come before
        self._body_deadline: asyncio.TimerHandle | None = None
        self._body_bytes = 0  # of the request being read, this window

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
            self._head_too_large = True
            self.send_400_response(_HEAD_TOO_LARGE)

    def send_400_response(self, msg: str) -> None:
        # uvicorn's own is text/plain, without nosniff; a head refused in a parser callback
        # comes here as uvicorn's "Invalid HTTP request received."
        self._answer_and_close(
            HTTPStatus.BAD_REQUEST, _HEAD_TOO_LARGE if self._head_too_large else msg
        )

    def _unsupported_upgrade_warning(self) -> None:
        """Silent: uvicorn warns (twice) at each upgrade asked for, a line anyone could make
        the log write at will; the request is answered as any other."""

    def on_message_begin(self) -> None:
        super().on_message_begin()
        # Where in this read the request starts is not known: all of it counts, which can only
        # make the limit stricter (and is exact unless requests are pipelined).
        self._head_bytes = self._read_bytes
        self._parsed_head_bytes = 0

    def on_url(self, url: bytes) -> None:
        self._count_head(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_head(len(name) + len(value) + len(b": \r\n"))
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._awaiting_head = False
        self._head_bytes = None
        self._disarm_header_deadline()
        super().on_headers_complete()
        self._body_bytes = 0
        self._arm_body_deadline()

    def on_body(self, body: bytes) -> None:
        self._body_bytes += len(body)
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._disarm_body_deadline()
        super().on_message_complete()
        self._awaiting_head = True

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm_header_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_deadline()
        self._disarm_body_deadline()
        super().connection_lost(exc)

    def _count_head(self, size: int) -> None:
        # A head that arrives whole in one read is parsed before the count by reads can see it.
        self._parsed_head_bytes += size
        if self._parsed_head_bytes > self.max_header_bytes:
            self._head_too_large = True
            raise ValueError(_HEAD_TOO_LARGE)  # stops the parser; uvicorn answers 400

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

    def _arm_body_deadline(self) -> None:
        self._disarm_body_deadline()
        self._body_deadline = self.loop.call_later(self.body_window_s, self._check_body_pace)

    def _disarm_body_deadline(self) -> None:
        if self._body_deadline is not None:
            self._body_deadline.cancel()
            self._body_deadline = None

    def _check_body_pace(self) -> None:
        self._body_deadline = None
        # A pause is ours (the app has not taken what came): the client is not to blame.
        if self._body_bytes >= self.body_window_bytes or self.flow.read_paused:
            self._body_bytes = 0
            self._arm_body_deadline()
        elif self.transport.is_closing():
            return
        elif self.cycle is not None and self.cycle.response_started:
            self.transport.close()  # answered already; the rest of the body is not wanted
        else:
            pace = f"at least {self.body_window_bytes} bytes every {self.body_window_s:g} s"
            self._answer_and_close(HTTPStatus.REQUEST_TIMEOUT, f"request body: too slow: {pace}")

    def _answer_and_close(self, status: HTTPStatus, message: str) -> None:
        """An error answer from the protocol itself, before or instead of the app's."""
        if self.transport.is_closing():
            return
        path = self.url.partition(b"?")[0].decode("ascii", "replace")
        method = self.scope.get("method", "") if self.scope is not None else ""
        body = json.dumps(error_document(message, path=path, method=method)).encode()
        head = [f"HTTP/1.1 {status.value} {status.phrase}".encode()]
        head += [name + b": " + value for name, value in self.server_state.default_headers]
        head += [
            b"content-type: application/json",
            b"content-length: " + str(len(body)).encode(),
            b"x-content-type-options: nosniff",
            b"connection: close",
        ]
        self.transport.write(b"\r\n".join(head) + b"\r\n\r\n" + body)
        self.transport.close()


def server_config(app: Any, *, host: str, port: int, **options: Any) -> uvicorn.Config:
    """uvicorn's settings with the limits above."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=GuardedHttpToolsProtocol,
        timeout_keep_alive=KEEP_ALIVE_S,
        ws="none",
        log_config=None,
        lifespan="off",
        **options,
    )
