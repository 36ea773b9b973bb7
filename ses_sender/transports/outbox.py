"""Development transport: each email becomes a `.eml` file instead of leaving the machine."""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from ses_sender.transports.base import OutgoingEmail, TransientError
from ses_sender.transports.mime import build_message


class OutboxTransport:
    """Writes `<message-id>.eml` files, with the MIME a recipient would get, so a developer sees
    what would go out."""

    name: str = "outbox"

    def __init__(self, directory: Path) -> None:
        self._directory = directory

    async def send(self, email: OutgoingEmail, *, on_sent: Callable[[], None] | None = None) -> str:
        message = build_message(email)
        path = self._directory / f"{message.message_id}.eml"
        try:
            await asyncio.to_thread(_write_atomically, path, message.data)
        except OSError as exc:
            raise TransientError(f"{type(exc).__name__}: {exc}") from exc
        if on_sent is not None:
            on_sent()
        return message.message_id

    async def close(self) -> None:
        """Nothing to release: every send opens and closes its own file."""


def _write_atomically(path: Path, data: bytes) -> None:
    """A reader (a developer, or a test polling the folder) never sees a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
