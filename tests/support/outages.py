"""A database that goes away under a running API, on either backend, and comes back.

SQLite's database sits on a small disk that `start` fills: its writes fail with "database or
disk is full" as on a real full disk, and its reads go on. PostgreSQL is reached through a
`FaultProxy` that `start` cuts: every read and write fails, as when the server is down. The
runtime trusts the test SNS signer (`signed_sns`), so SNS notifications can be posted too.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url

from ses_sender.composition import Runtime
from ses_sender.db.migrate import upgrade_to_head_async
from tests.support.clock import FakeClock
from tests.support.fault_proxy import fault_proxy
from tests.support.full_disk import small_disk
from tests.support.ports import HOST
from tests.support.settings import make_settings
from tests.support.signed_sns import signed_sns_runtime


@dataclass
class Outage:
    runtime: Runtime
    start: Callable[[], Awaitable[None]]
    end: Callable[[], Awaitable[None]]


@asynccontextmanager
async def database_outage(
    backend: str, database_url: str, tmp_path: Path, clock: FakeClock
) -> AsyncIterator[Outage]:
    """A runtime on a database of `backend` that the outage can take away; over at the end.

    On SQLite a fresh database on the small disk; on PostgreSQL `database_url` through the
    proxy (its tables emptied afterwards, as the `runtime` fixture does)."""
    if backend == "sqlite":
        with small_disk(tmp_path / "disk") as disk:
            url = f"sqlite:///{disk.root / 'app.db'}"
            await upgrade_to_head_async(url)

            async def fill() -> None:
                disk.fill()

            async def free() -> None:
                disk.free()

            async with _runtime(url, tmp_path, clock) as runtime:
                try:
                    yield Outage(runtime, fill, free)
                finally:
                    disk.free()
        return
    direct = make_url(database_url)
    assert direct.host is not None
    assert direct.port is not None
    async with fault_proxy(direct.host, direct.port) as proxy:
        url = direct.set(host=HOST, port=proxy.port).render_as_string(hide_password=False)
        async with _runtime(url, tmp_path, clock) as runtime:
            try:
                yield Outage(runtime, proxy.cut, proxy.restore)
            finally:
                await proxy.restore()


def _runtime(url: str, tmp_path: Path, clock: FakeClock) -> AbstractAsyncContextManager[Runtime]:
    return signed_sns_runtime(make_settings(url, OUTBOX_DIR=str(tmp_path / "outbox")), clock)
