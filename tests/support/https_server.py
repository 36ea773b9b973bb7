"""A local HTTPS server on 127.0.0.1 that serves a certificate, and misbehaves on request."""

from __future__ import annotations

import asyncio
import ssl
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from tests.support.signing import KeyPair

OVER_LIMIT = 64 * 1024 + 1  # bytes; one more than HttpsFetcher accepts


@dataclass(frozen=True)
class TlsFiles:
    ca_file: Path
    cert_file: Path
    key_file: Path

    @classmethod
    def write(cls, directory: Path, ca: KeyPair, server: KeyPair) -> TlsFiles:
        files = cls(directory / "ca.pem", directory / "server.pem", directory / "server.key")
        files.ca_file.write_bytes(ca.cert_pem)
        files.cert_file.write_bytes(server.cert_pem)
        files.key_file.write_bytes(server.key_pem)
        return files


class LocalHttpsServer:
    def __init__(self, tls: TlsFiles, cert_pem: bytes) -> None:
        self.cert_pem = cert_pem
        self.failing = False
        self.delay = 0.0  # seconds before /cert.pem answers
        self.hits: Counter[str] = Counter()
        self._tls = tls
        self._runner: web.AppRunner | None = None
        self._port = 0

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/cert.pem", self._cert)
        app.router.add_get("/redirect.pem", self._redirect)
        app.router.add_get("/big.pem", self._big)
        app.router.add_get("/big-chunked.pem", self._big_chunked)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self._tls.cert_file, self._tls.key_file)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=context).start()
        self._port = self._runner.addresses[0][1]

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def url(self, path: str) -> str:
        return f"https://127.0.0.1:{self._port}{path}"

    async def _cert(self, request: web.Request) -> web.Response:
        self.hits[request.path] += 1
        await asyncio.sleep(self.delay)
        if self.failing:
            return web.Response(status=500, text="try later")
        return web.Response(body=self.cert_pem, content_type="application/x-x509-ca-cert")

    async def _redirect(self, request: web.Request) -> web.Response:
        self.hits[request.path] += 1
        raise web.HTTPFound("/cert.pem")

    async def _big(self, request: web.Request) -> web.Response:
        self.hits[request.path] += 1
        return web.Response(body=b"x" * OVER_LIMIT)

    async def _big_chunked(self, request: web.Request) -> web.StreamResponse:
        # No Content-Length: the limit has to be enforced while reading.
        self.hits[request.path] += 1
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        for _ in range(OVER_LIMIT // 4096 + 1):
            await response.write(b"x" * 4096)
        await response.write_eof()
        return response
