"""A small HTTP/1.1 server that stamps each request with the time the kernel received it.

The SES stub counts requests in one-second windows by their arrival, as SES does. Stamped when the
stub's event loop gets round to a request, any pause of the stub's own process (another process on
the CPU, a garbage collection) bunches the stamps of everything that came in meanwhile, and evenly
spaced sends look like a burst. The kernel stamps each packet as it comes in (`SO_TIMESTAMPNS`) and
`recvmsg` hands that stamp over with the bytes; asyncio's transports read with `recv`, which drops
it, so this server does its own reads and leaves the HTTP framing to h11.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import select
import socket
import struct
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any

import h11

log = logging.getLogger(__name__)

# Linux's value on x86 and ARM; Python's socket module does not name it.
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
_TIMESPEC = struct.Struct("@ll")
_ANCILLARY_SIZE = socket.CMSG_SPACE(_TIMESPEC.size)
_READ_SIZE = 65536


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str  # without the query string
    headers: Mapping[str, str]  # names in lower case
    body: bytes
    arrival: float  # when the kernel received the request, on `time.time()`'s clock

    def json(self) -> dict[str, Any]:
        """The body as a JSON object, whatever the Content-Type (so curl can drive the stub);
        `BadRequestError` if it is not one."""
        try:
            body = json.loads(self.body or b"{}")
        except ValueError as error:
            raise BadRequestError(f"the body is not JSON: {error}") from error
        if not isinstance(body, dict):
            raise BadRequestError("the body is not a JSON object")
        return body


class BadRequestError(Exception):
    """Answered with 400 and this message."""


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()


def json_response(
    data: Any, *, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    extra = tuple((headers or {}).items())
    return Response(
        status, json.dumps(data).encode(), (("content-type", "application/json"), *extra)
    )


Handler = Callable[[Request], Awaitable[Response]]


class StampedServer:
    """Serves `routes`, keyed by (method, path), on one listening socket until `stop`."""

    def __init__(self, routes: Mapping[tuple[str, str], Handler]) -> None:
        self._routes = dict(routes)
        self._listener: socket.socket | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._connections = 0  # accepted and not yet closed

    async def start(self, host: str, port: int) -> int:
        """Listen on host:port (0 picks a free port); return the port bound."""
        listener = socket.create_server((host, port), backlog=socket.SOMAXCONN)
        # Set here, it holds for every connection accepted, even for bytes that came in before
        # the accept: the kernel stamps them as they arrive.
        listener.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        listener.setblocking(False)
        self._listener = listener
        self._spawn(self._accept(listener))
        port_bound: int = listener.getsockname()[1]
        return port_bound

    async def stop(self) -> None:
        """Stop listening and drop every connection, whatever its handler is waiting for."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._listener is not None:
            self._listener.close()
            self._listener = None

    def idle(self) -> bool:
        """Whether every connection made so far has been read to its end and closed: none is
        open, and none waits to be accepted. Once the clients are gone, that is when every
        request they sent has been seen."""
        if self._connections:
            return False
        if self._listener is None:
            return True
        waiting, _, _ = select.select([self._listener], [], [], 0)
        return not waiting

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _accept(self, listener: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            connection, _ = await loop.sock_accept(listener)
            connection.setblocking(False)
            connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._connections += 1
            self._spawn(self._serve(connection))

    async def _serve(self, sock: socket.socket) -> None:
        try:
            await self._converse(sock)
        finally:
            self._connections -= 1

    async def _converse(self, sock: socket.socket) -> None:
        with sock:
            reader = _StampedReader(sock)
            http = h11.Connection(h11.SERVER)
            try:
                while (request := await _read_request(http, reader)) is not None:
                    response = await self._answer(request)
                    await _write_response(http, sock, response)
                    if http.our_state is not h11.DONE:
                        return  # the client asked to close, or h11 cannot reuse the connection
                    http.start_next_cycle()
            except h11.RemoteProtocolError as error:
                if http.our_state in {h11.IDLE, h11.SEND_RESPONSE}:
                    refusal = json_response({"message": f"bad HTTP: {error}"}, status=400)
                    with contextlib.suppress(OSError, h11.ProtocolError):
                        await _write_response(http, sock, refusal)
            except (OSError, h11.LocalProtocolError):
                return  # the client went away: nothing to answer

    async def _answer(self, request: Request) -> Response:
        handler = self._routes.get((request.method, request.path))
        if handler is None:
            if any(path == request.path for _, path in self._routes):
                return json_response({"message": "method not allowed"}, status=405)
            return json_response({"message": f"no route for {request.path}"}, status=404)
        try:
            return await handler(request)
        except BadRequestError as error:
            return json_response({"message": str(error)}, status=400)
        except Exception as error:
            log.exception("the handler for %s %s failed", request.method, request.path)
            return json_response({"message": repr(error)}, status=500)


class _StampedReader:
    """Reads a socket with `recvmsg`, keeping the kernel's stamp of what was read last."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self.last_stamp = time.time()

    async def read(self) -> bytes:
        """The next bytes received, b"" once the client has closed."""
        while True:
            try:
                data, ancillary, _, _ = self._sock.recvmsg(_READ_SIZE, _ANCILLARY_SIZE)
            except BlockingIOError:
                await self._readable()
                continue
            self.last_stamp = _kernel_stamp(ancillary) or time.time()
            return data

    async def _readable(self) -> None:
        loop = asyncio.get_running_loop()
        readable = loop.create_future()

        def wake() -> None:
            if not readable.done():
                readable.set_result(None)

        loop.add_reader(self._sock, wake)
        try:
            await readable
        finally:
            loop.remove_reader(self._sock)


def _kernel_stamp(ancillary: list[tuple[int, int, bytes]]) -> float | None:
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
            seconds, nanoseconds = _TIMESPEC.unpack(data[: _TIMESPEC.size])
            stamp: float = seconds + nanoseconds / 1e9
            return stamp
    return None


async def _read_request(http: h11.Connection, reader: _StampedReader) -> Request | None:
    """The next whole request on the connection, None once the client has closed it."""
    head: h11.Request | None = None
    arrival = 0.0
    body = bytearray()
    while True:
        event = http.next_event()
        if event is h11.NEED_DATA:
            http.receive_data(await reader.read())
        elif isinstance(event, h11.Request):
            head, arrival = event, reader.last_stamp
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage) and head is not None:
            return Request(
                method=head.method.decode(),
                path=head.target.decode().split("?", 1)[0],
                # HTTP/1.1 header values are ISO-8859-1: any byte decodes.
                headers={name.decode(): value.decode("latin-1") for name, value in head.headers},
                body=bytes(body),
                arrival=arrival,
            )
        else:
            return None  # ConnectionClosed


async def _write_response(http: h11.Connection, sock: socket.socket, response: Response) -> None:
    headers = [*response.headers, ("content-length", str(len(response.body)))]
    data = b"".join(
        [
            http.send(h11.Response(status_code=response.status, headers=headers)) or b"",
            http.send(h11.Data(data=response.body)) or b"",
            http.send(h11.EndOfMessage()) or b"",
        ]
    )
    await asyncio.get_running_loop().sock_sendall(sock, data)
