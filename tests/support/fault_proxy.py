"""A TCP proxy a test can cut: a service away, without stopping it for everyone else.

`FaultProxy` forwards a loopback port to a target (the shared PostgreSQL, a stub). `cut()`
closes every connection through it and refuses new ones, as a server that went down does;
`restore()` takes connections again on the same port. It runs in the test's event loop, so the
test must not block that loop while processes talk through it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from tests.support.ports import HOST, free_port

CHUNK_BYTES = 64 * 1024


class FaultProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self.port = free_port()
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()
        self.connections = 0  # accepted since the start, for a test to see its traffic go here

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, HOST, self.port)

    async def cut(self) -> None:
        """Refuse new connections and reset the open ones."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for pipe in list(self._pipes):
            pipe.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)
        if server is not None:
            await server.wait_closed()

    async def restore(self) -> None:
        if self._server is None:
            await self.start()

    async def _serve(
        self, client_reader: asyncio.StreamReader, client: asyncio.StreamWriter
    ) -> None:
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self._pipes.add(task)
        try:
            server_reader, server = await asyncio.open_connection(*self._target)
        except OSError:
            self._pipes.discard(task)
            client.close()
            return
        try:
            await asyncio.gather(_pump(client_reader, server), _pump(server_reader, client))
        except asyncio.CancelledError:
            pass  # cut: both ends are closed below
        finally:
            self._pipes.discard(task)
            for writer in (client, server):
                _reset(writer)


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await reader.read(CHUNK_BYTES):
            writer.write(chunk)
            await writer.drain()
    except OSError:
        pass  # the other end went away; the pipe ends with it
    finally:
        _reset(writer)


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close at once, as a lost server does, without waiting for unsent data."""
    with contextlib.suppress(RuntimeError):  # the loop may be closing already
        writer.transport.abort()


@asynccontextmanager
async def fault_proxy(target_host: str, target_port: int) -> AsyncIterator[FaultProxy]:
    """A started proxy to `target_host:target_port`, cut when the block ends."""
    proxy = FaultProxy(target_host, target_port)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.cut()
