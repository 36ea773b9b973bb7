"""A real SMTP server (aiosmtpd, in its own thread) that records what it receives."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.support.ports import HOST, free_port

USERNAME = "smtp-user"
PASSWORD = "smtp-password"


@dataclass(frozen=True, slots=True)
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    peer: tuple[str, int]  # the client's address: one per connection

    def message(self) -> EmailMessage:
        return message_from_bytes(self.data, policy=policy.default)


class RecordingHandler:
    """aiosmtpd hooks. Runs on the server thread; tests read `received` after awaiting a send."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.data_replies: deque[str] = deque()  # answers to the next DATA commands instead of 250
        self.drop_after_data = False  # close the connection right after accepting a message
        self.drop_on_mail = False  # abort the connection on the next MAIL command, unanswered
        self.accepted_reply = "250 Message accepted for delivery"

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, mail_options: list[str]
    ) -> str:
        if self.drop_on_mail:
            self.drop_on_mail = False
            server.transport.abort()
            return "421 gone"  # never reaches the client: the transport is already aborted
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.data_replies:
            return self.data_replies.popleft()
        self.received.append(
            Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.content, session.peer)
        )
        if self.drop_after_data:
            # After the reply below has been written.
            asyncio.get_running_loop().call_soon(server.transport.close)
        return self.accepted_reply


def _authenticate(
    server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
) -> AuthResult:
    valid = isinstance(auth_data, LoginPassword) and auth_data == (
        USERNAME.encode(),
        PASSWORD.encode(),
    )
    # handled=False: aiosmtpd then sends the 535 itself.
    return AuthResult(success=valid, handled=False)


@contextlib.contextmanager
def running_smtp_server(
    handler: RecordingHandler, *, tls_context: ssl.SSLContext | None = None
) -> Iterator[int]:
    """Serve on a free loopback port (yielded). With `tls_context`: STARTTLS and AUTH required."""
    options: dict[str, Any] = {}
    if tls_context is not None:
        options = {
            "tls_context": tls_context,
            "require_starttls": True,
            "auth_required": True,
            "authenticator": _authenticate,
        }
    port = free_port()
    # server_hostname: the default, socket.getfqdn(), may ask DNS.
    controller = Controller(
        handler, hostname=HOST, port=port, server_hostname="localhost", **options
    )
    controller.start()
    try:
        yield port
    finally:
        controller.stop()
