"""Stand-ins for what the service reaches over the internet when SNS calls: the certificate host.

The service fetches `https://sns.<region>.amazonaws.com/<cert>.pem` through an HTTPS proxy (the
standard HTTPS_PROXY variable), which here is `ConnectProxy`: it tunnels every CONNECT to a local
TLS server whose certificate, for the SNS host name, comes from a test CA that the service trusts
through SSL_CERT_FILE. Nothing leaves the loopback interface.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from pathlib import Path

from aiohttp import web


class CertificateHost:
    """HTTPS on 127.0.0.1 serving one PEM file at one path."""

    def __init__(self, *, path: str, pem: bytes, cert_file: Path, key_file: Path) -> None:
        self._path = path
        self._pem = pem
        self._context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._context.load_cert_chain(cert_file, key_file)
        self._runner: web.AppRunner | None = None
        self.port = 0
        self.fetches = 0

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get(self._path, self._serve)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self._context).start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _serve(self, request: web.Request) -> web.Response:
        self.fetches += 1
        return web.Response(body=self._pem, content_type="application/x-pem-file")


class ConnectProxy:
    """An HTTP CONNECT proxy that sends every tunnel to one local port, whatever host is asked."""

    def __init__(self, target_port: int) -> None:
        self._target_port = target_port
        self._server: asyncio.Server | None = None
        self.tunnels: list[str] = []
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request_line = (await reader.readline()).decode("latin-1").split()
        while (await reader.readline()).strip():
            pass  # the rest of the CONNECT request's headers
        if len(request_line) < 2 or request_line[0] != "CONNECT":
            writer.write(b"HTTP/1.1 405 Method Not Allowed\r\n\r\n")
            writer.close()
            return
        self.tunnels.append(request_line[1])
        upstream_reader, upstream_writer = await asyncio.open_connection(
            "127.0.0.1", self._target_port
        )
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await writer.drain()
        await asyncio.gather(_pipe(reader, upstream_writer), _pipe(upstream_reader, writer))


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError):
        while chunk := await reader.read(65_536):
            writer.write(chunk)
            await writer.drain()
    writer.close()
