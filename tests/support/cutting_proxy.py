"""A TCP proxy that plays a network failing mid-run: it passes the first requests on, then
passes one more to the server but drops the connection before the client has its answer, and
refuses everything after. The client cannot know whether that last request was taken."""

from __future__ import annotations

import asyncio
import contextlib

HOST = "127.0.0.1"


class CuttingProxy:
    def __init__(self, upstream_port: int, *, marker: bytes, answered: int) -> None:
        """Requests whose bytes start with `marker`: the first `answered` pass both ways."""
        self._upstream_port = upstream_port
        self._marker = marker
        self._answered = answered
        self._seen = 0
        self.cut = False
        self._server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._connection, HOST, 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _connection(
        self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter
    ) -> None:
        if self.cut:
            client_writer.close()
            return
        upstream_reader, upstream_writer = await asyncio.open_connection(HOST, self._upstream_port)
        cut_here = asyncio.Event()
        to_server = asyncio.create_task(
            self._client_to_server(client_reader, upstream_writer, cut_here)
        )
        try:
            await self._server_to_client(upstream_reader, client_writer, cut_here)
        finally:
            to_server.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await to_server
            for writer in (client_writer, upstream_writer):
                writer.close()

    async def _client_to_server(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        cut_here: asyncio.Event,
    ) -> None:
        while data := await reader.read(65536):
            self._seen += data.count(self._marker)
            if self._seen > self._answered:
                cut_here.set()
            writer.write(data)
            await writer.drain()

    async def _server_to_client(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        cut_here: asyncio.Event,
    ) -> None:
        while data := await reader.read(65536):
            if cut_here.is_set():
                self.cut = True  # the server answered the request the client never hears of
                return
            writer.write(data)
            await writer.drain()
