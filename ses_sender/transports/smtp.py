"""SMTP (SES's SMTP interface or any relay) through aiosmtplib, over a small connection pool."""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import ssl
from collections.abc import Callable
from email.utils import parseaddr

import aiosmtplib

from ses_sender.config import SmtpSecurity
from ses_sender.transports.base import (
    AccountPausedError,
    OutgoingEmail,
    PermanentError,
    SendError,
    ThrottledError,
    TransientError,
)
from ses_sender.transports.mime import build_message

_SERVICE_CLOSING = 421  # the server is about to drop the connection: never reuse it
# SES's SMTP interface, in every region (FIPS endpoints included).
_SES_SMTP_HOST = re.compile(r"email-smtp(?:-fips)?\.[a-z]{2}(?:-[a-z]+)+-\d\.amazonaws\.com\.?")


def is_ses_smtp_host(host: str) -> bool:
    """SES reads (and strips) the X-SES-* headers; another relay would deliver them."""
    return _SES_SMTP_HOST.fullmatch(host.lower()) is not None


class SmtpTransport:
    """Sends each email as one MAIL/RCPT/DATA transaction over up to `max_connections` connections.

    Connections stay open between sends. One the server closed while idle is reopened, and a
    transaction whose MAIL command finds the connection gone is retried once on a fresh one:
    nothing of the message had been sent yet, so that retry cannot duplicate it.
    """

    name: str = "smtp"

    def __init__(
        self,
        host: str,
        port: int,
        *,
        username: str | None = None,
        password: str | None = None,
        security: SmtpSecurity = SmtpSecurity.STARTTLS,
        timeout_s: float = 30.0,
        max_connections: int = 4,
        configuration_set: str | None = None,
        ses_relay: bool = False,
        tls_context: ssl.SSLContext | None = None,
        local_hostname: str | None = None,
    ) -> None:
        self._host = host
        self._port = port
        self._username = username
        self._password = password
        self._security = security
        self._timeout_s = timeout_s
        self._configuration_set = configuration_set
        self._ses_relay = ses_relay
        self._tls_context = tls_context
        # aiosmtplib's default is socket.getfqdn(), which can block on a DNS query.
        self._local_hostname = local_hostname or socket.gethostname()
        self._slots = asyncio.Semaphore(max_connections)
        self._idle: list[aiosmtplib.SMTP] = []
        self._closed = False

    async def send(self, email: OutgoingEmail, *, on_sent: Callable[[], None] | None = None) -> str:
        message = build_message(
            email, for_ses=self._ses_relay, configuration_set=self._configuration_set
        )
        sender = _envelope_address(email.sender)
        recipient = _envelope_address(email.to)
        async with self._slots:
            smtp = self._idle.pop() if self._idle else self._new_connection()
            reusable = False
            try:
                accepted = await self._transaction(smtp, sender, recipient, message.data, on_sent)
                reusable = True
            except aiosmtplib.SMTPResponseException as exc:
                reusable = exc.code != _SERVICE_CLOSING and await _reset(smtp)
                raise classify_smtp_error(exc) from exc
            except (aiosmtplib.SMTPException, OSError) as exc:
                raise classify_smtp_error(exc) from exc
            finally:
                if reusable and not self._closed:
                    self._idle.append(smtp)
                else:
                    smtp.close()
        return provider_message_id(accepted) or message.message_id

    async def close(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for smtp in idle:
            # A polite QUIT; the connection is closed whether or not the server answers.
            with contextlib.suppress(aiosmtplib.SMTPException, OSError):
                await smtp.quit()
            smtp.close()

    def _new_connection(self) -> aiosmtplib.SMTP:
        return aiosmtplib.SMTP(
            hostname=self._host,
            port=self._port,
            username=self._username,
            password=self._password,
            use_tls=self._security is SmtpSecurity.TLS,
            start_tls=self._security is SmtpSecurity.STARTTLS,
            tls_context=self._tls_context,
            timeout=self._timeout_s,
            local_hostname=self._local_hostname,
        )

    async def _transaction(
        self,
        smtp: aiosmtplib.SMTP,
        sender: str,
        recipient: str,
        data: bytes,
        on_sent: Callable[[], None] | None,
    ) -> str:
        """The server's reply to DATA, once it has accepted the message."""
        reused = smtp.is_connected
        if not reused:
            await _connect(smtp)
        if on_sent is not None:
            on_sent()  # at MAIL FROM: the email's own conversation with the server begins
        try:
            await smtp.mail(sender)
        except aiosmtplib.SMTPServerDisconnected:
            if not reused:
                raise
            # Closed by the server while idle, before we noticed: reconnect and start again.
            smtp.close()
            await _connect(smtp)
            await smtp.mail(sender)
        await smtp.rcpt(recipient)
        reply = await smtp.data(data)
        return reply.message


def provider_message_id(data_reply: str) -> str | None:
    """SES's SMTP interface answers DATA with "Ok <message id>": the id its events will carry.

    Other servers' replies say nothing we can match events on; None then.
    """
    match = _SES_ACCEPTED.match(data_reply)
    return match.group(1) if match else None


async def _connect(smtp: aiosmtplib.SMTP) -> None:
    await smtp.connect()
    # connect() only greets the server when STARTTLS or AUTH needed it; MAIL requires EHLO first.
    if smtp.is_ehlo_or_helo_needed:
        await smtp.ehlo()


async def _reset(smtp: aiosmtplib.SMTP) -> bool:
    """Abort the failed transaction so the connection can carry the next one; False if it can't."""
    try:
        await smtp.rset()
    except (aiosmtplib.SMTPException, OSError):
        return False
    return True


_SES_ACCEPTED = re.compile(r"Ok ([0-9a-f]{16}-[0-9a-f-]+-\d{6})\s*$", re.IGNORECASE)


def _envelope_address(address: str) -> str:
    bare = parseaddr(address)[1]
    if not bare:
        raise PermanentError(f"InvalidAddress: {address!r}")
    return bare


def classify_smtp_error(exc: aiosmtplib.SMTPException | OSError) -> SendError:
    """Map an aiosmtplib failure to what the queue should do about it."""
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError | aiosmtplib.SMTPNotSupported):
        # Wrong credentials or a server without the configured TLS/AUTH: no email can go out.
        return AccountPausedError(f"{type(exc).__name__}: {exc}")
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return classify_smtp_reply(exc.code, exc.message)
    return TransientError(f"{type(exc).__name__}: {exc}")


def classify_smtp_reply(code: int, message: str) -> SendError:
    reason = f"{code} {message}"
    text = message.lower()
    # SES's SMTP interface answers its quotas with "454 Throttling failure: ...".
    if "daily message quota exceeded" in text:
        return AccountPausedError(reason)
    if code in (421, 454) and ("throttl" in text or "rate" in text):
        return ThrottledError(reason)
    if 500 <= code < 600:
        return PermanentError(reason)
    return TransientError(reason)
