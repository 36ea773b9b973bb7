"""A stand-in for the SES v2 API, for tests that need what moto lacks.

moto drops Simple `Headers`, `EmailTags` and `ConfigurationSetName`, never throttles and has no
GetAccount. This stub records every SendEmail it receives and can answer with scripted failures,
added latency, or 429s from a per-second recipient window like the real account rate. Each send
is stamped with the time the kernel received it (`stamped_http`), so the window counts sends as
they reached the stub, however busy the stub's own process was.

In the test process: start `SesStub` (or use the `ses_stub` fixture) and drive it directly. Against
a service running as its own process: `python -m tests.support.ses_stub --port N` (0 = any free
port) prints the bound port number, alone on one line, once listening; SIGTERM stops it.
`/_stub/...` exposes the same controls over HTTP:

* `GET /_stub/received` -> `{"received": [record, ...], "throttled": n}`
* `GET /_stub/counts` -> `{"received": n, "accepted": n, "throttled": n, "peak_in_flight": n,
  "account_checks": n}` (cheap at any volume; `peak_in_flight`: most SendEmail requests open
  at once; `account_checks`: GetAccount requests answered)
* `POST /_stub/reset`
* `POST /_stub/script` `{"failures": ["throttled", {"status": 400, "code": "C", "message": "M"}]}`
  queues failures for the next sends (preset names are the keys of `PRESETS`)
* `POST /_stub/config` `{"latency_s": 0.2, "max_per_second": 10, "max_send_rate": 14,
  "max_24_hour_send": 50000, "sending_enabled": false, "unavailable": true}` (any subset;
  `max_per_second: null` lifts the window). GetAccount reports them, and sends are refused as SES
  refuses them: with `SendingPausedException` while `sending_enabled` is false, with the
  daily-quota error once `max_24_hour_send` recipients were accepted. While `unavailable`,
  SendEmail and GetAccount both answer 503, as SES does to everyone in an outage.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gc
import signal
import uuid
from bisect import bisect_left, bisect_right, insort
from collections import deque
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from operator import itemgetter
from typing import Any

from tests.support.stamped_http import Handler, Request, Response, StampedServer, json_response

HOST = "127.0.0.1"
WINDOW_S = 1.0  # seconds; SES's MaxSendRate is recipients per second
_ARRIVAL = itemgetter(0)  # of a window entry


@dataclass(frozen=True, slots=True)
class Failure:
    status: int
    code: str
    message: str


THROTTLED = Failure(429, "TooManyRequestsException", "Maximum sending rate exceeded.")
SERVER_ERROR = Failure(500, "InternalFailure", "The request processing has failed.")
REJECTED = Failure(400, "MessageRejected", "Email address is not verified.")
SENDING_PAUSED = Failure(400, "SendingPausedException", "Sending is paused for this account.")
ACCOUNT_SUSPENDED = Failure(400, "AccountSuspendedException", "Your account is suspended.")
DAILY_QUOTA = Failure(400, "LimitExceededException", "Daily message quota exceeded.")
BAD_REQUEST = Failure(400, "BadRequestException", "Invalid request.")
UNAVAILABLE = Failure(503, "ServiceUnavailable", "Service is unavailable.")

PRESETS: Mapping[str, Failure] = {
    "throttled": THROTTLED,
    "server_error": SERVER_ERROR,
    "rejected": REJECTED,
    "sending_paused": SENDING_PAUSED,
    "account_suspended": ACCOUNT_SUSPENDED,
    "daily_quota": DAILY_QUOTA,
    "bad_request": BAD_REQUEST,
}

DEFAULT_MAX_SEND_RATE = 14.0
DEFAULT_MAX_24_HOUR_SEND = 50_000.0


class RecipientWindow:
    """The recipients accepted in the last seconds, by arrival, to hold a limit per window."""

    def __init__(self) -> None:
        self._sends: list[tuple[float, int]] = []  # (arrival, recipients), in arrival order

    def clear(self) -> None:
        self._sends.clear()

    def would_exceed(self, limit: float, arrival: float, recipients: int) -> bool:
        """Whether `recipients` more at `arrival` would put more than `limit` in any window of
        `WINDOW_S` that holds `arrival`.

        Requests on different connections are handled in the order the event loop reads them,
        which can differ a little from the order the kernel stamped them: so besides the window
        ending at `arrival`, those ending at each later arrival within a window are counted.
        """
        sends = self._sends
        later = sends[
            bisect_right(sends, arrival, key=_ARRIVAL) : bisect_left(
                sends, arrival + WINDOW_S, key=_ARRIVAL
            )
        ]
        ends = [arrival, *(at for at, _ in later)]
        return any(self._recipients_in_window_ending(end) + recipients > limit for end in ends)

    def add(self, arrival: float, recipients: int) -> None:
        insort(self._sends, (arrival, recipients), key=_ARRIVAL)
        # Kept a window longer than `would_exceed` needs, for a request handled late.
        forget = bisect_right(self._sends, self._sends[-1][0] - 2 * WINDOW_S, key=_ARRIVAL)
        del self._sends[:forget]

    def _recipients_in_window_ending(self, end: float) -> int:
        first = bisect_right(self._sends, end - WINDOW_S, key=_ARRIVAL)
        after = bisect_right(self._sends, end, key=_ARRIVAL)
        return sum(count for _, count in self._sends[first:after])


class SesStub:
    """The SES v2 endpoints SendEmail and GetAccount, plus the controls tests need.

    Every SendEmail is appended to `received` (a JSON-able dict, see `_record`) whatever the answer,
    so `len(received)` is the number of requests made; `accepted` keeps the 200s.
    """

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.throttled = 0
        self.latency_s = 0.0
        self.max_per_second: float | None = None
        self.max_send_rate = DEFAULT_MAX_SEND_RATE
        self.max_24_hour_send = DEFAULT_MAX_24_HOUR_SEND
        self.sending_enabled = True
        self.unavailable = False
        self.sent_recipients = 0  # accepted so far: SentLast24Hours, and the daily quota's count
        self.in_flight = 0
        self.peak_in_flight = 0
        self.account_checks = 0
        self._failures: deque[Failure] = deque()
        self._window = RecipientWindow()
        self._server: StampedServer | None = None
        self.url = ""

    @property
    def accepted(self) -> list[dict[str, Any]]:
        return [record for record in self.received if record["status"] == 200]

    def fail_next(self, failure: Failure, times: int = 1) -> None:
        """Answer the next `times` SendEmail requests with `failure`, before any other check."""
        self._failures.extend([failure] * times)

    def reset(self) -> None:
        self.received.clear()
        self.throttled = 0
        self.latency_s = 0.0
        self.max_per_second = None
        self.max_send_rate = DEFAULT_MAX_SEND_RATE
        self.max_24_hour_send = DEFAULT_MAX_24_HOUR_SEND
        self.sending_enabled = True
        self.unavailable = False
        self.sent_recipients = 0
        self.peak_in_flight = self.in_flight
        self.account_checks = 0
        self._failures.clear()
        self._window.clear()

    def configure(self, settings: Mapping[str, Any]) -> None:
        """Apply the `/_stub/config` keys present in `settings`."""
        if "latency_s" in settings:
            self.latency_s = float(settings["latency_s"])
        if "max_per_second" in settings:
            limit = settings["max_per_second"]
            self.max_per_second = None if limit is None else float(limit)
        if "max_send_rate" in settings:
            self.max_send_rate = float(settings["max_send_rate"])
        if "max_24_hour_send" in settings:
            self.max_24_hour_send = float(settings["max_24_hour_send"])
        if "sending_enabled" in settings:
            self.sending_enabled = bool(settings["sending_enabled"])
        if "unavailable" in settings:
            self.unavailable = bool(settings["unavailable"])

    async def start(self, host: str = HOST, port: int = 0) -> str:
        """Listen on host:port (0 picks a free port); return the base URL, also kept in `url`."""
        server = StampedServer(self._routes())
        bound_port = await server.start(host, port)
        self._server = server
        self.url = f"http://{host}:{bound_port}"
        return self.url

    def idle(self) -> bool:
        """No connection open or waiting: every request its clients sent has been recorded
        (see `StampedServer.idle`). With the clients gone, what the stub holds is final."""
        return self._server is None or self._server.idle()

    async def restart(self) -> None:
        """Listen again on the port it had, after `stop`: SES back where it was."""
        host, port = self.url.removeprefix("http://").rsplit(":", 1)
        await self.start(host, int(port))

    async def stop(self) -> None:
        """Stop at once: a send still in its latency sleep (its client gave up) is dropped."""
        if self._server is not None:
            await self._server.stop()
            self._server = None

    def _routes(self) -> dict[tuple[str, str], Handler]:
        return {
            ("POST", "/v2/email/outbound-emails"): self._send_email,
            ("GET", "/v2/email/account"): self._get_account,
            ("GET", "/_stub/received"): self._http_received,
            ("GET", "/_stub/counts"): self._http_counts,
            ("POST", "/_stub/reset"): self._http_reset,
            ("POST", "/_stub/script"): self._http_script,
            ("POST", "/_stub/config"): self._http_config,
        }

    async def _send_email(self, request: Request) -> Response:
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            return await self._answer_send(request)
        finally:
            self.in_flight -= 1

    async def _answer_send(self, request: Request) -> Response:
        arrival = request.arrival
        record = _record(request.json(), arrival, authorized=_is_signed(request))
        self.received.append(record)
        failure = self._failures.popleft() if self._failures else None
        if failure is None and self.unavailable:
            failure = UNAVAILABLE
        if failure is None and not self.sending_enabled:
            failure = SENDING_PAUSED
        if failure is None and self.sent_recipients >= self.max_24_hour_send:
            failure = DAILY_QUOTA
        if failure is None and self._over_rate(arrival, record["recipients"]):
            failure = THROTTLED
        if failure is not None:
            if failure.status == 429:
                self.throttled += 1
            record["status"] = failure.status
            await self._delay()
            return _error(failure)
        self._window.add(arrival, record["recipients"])
        self.sent_recipients += record["recipients"]
        record["status"] = 200
        record["message_id"] = f"{uuid.uuid4()}-000000"
        await self._delay()
        return json_response({"MessageId": record["message_id"]})

    async def _get_account(self, request: Request) -> Response:
        self.account_checks += 1
        if self.unavailable:
            return _error(UNAVAILABLE)
        return json_response(
            {
                "SendQuota": {
                    "Max24HourSend": self.max_24_hour_send,
                    "MaxSendRate": self.max_send_rate,
                    "SentLast24Hours": float(self.sent_recipients),
                },
                "SendingEnabled": self.sending_enabled,
                "ProductionAccessEnabled": True,
                "EnforcementStatus": "HEALTHY",
                "DedicatedIpAutoWarmupEnabled": False,
            }
        )

    def _over_rate(self, arrival: float, recipients: int) -> bool:
        if self.max_per_second is None:
            return False
        return self._window.would_exceed(self.max_per_second, arrival, recipients)

    async def _delay(self) -> None:
        if self.latency_s > 0:
            await asyncio.sleep(self.latency_s)

    async def _http_received(self, request: Request) -> Response:
        return json_response({"received": self.received, "throttled": self.throttled})

    async def _http_counts(self, request: Request) -> Response:
        return json_response(
            {
                "received": len(self.received),
                "accepted": len(self.accepted),
                "throttled": self.throttled,
                "peak_in_flight": self.peak_in_flight,
                "account_checks": self.account_checks,
            }
        )

    async def _http_reset(self, request: Request) -> Response:
        self.reset()
        return json_response({})

    async def _http_script(self, request: Request) -> Response:
        for item in request.json().get("failures", []):
            self.fail_next(PRESETS[item] if isinstance(item, str) else Failure(**item))
        return json_response({"queued": [asdict(failure) for failure in self._failures]})

    async def _http_config(self, request: Request) -> Response:
        self.configure(request.json())
        return json_response({})


def _record(body: Mapping[str, Any], arrival: float, *, authorized: bool) -> dict[str, Any]:
    destination = body.get("Destination", {})
    to = list(destination.get("ToAddresses", []))
    cc = list(destination.get("CcAddresses", []))
    bcc = list(destination.get("BccAddresses", []))
    simple = body.get("Content", {}).get("Simple", {})
    raw = body.get("Content", {}).get("Raw", {}).get("Data")
    mime_body = simple.get("Body", {})
    return {
        "at": arrival,
        "status": None,
        "message_id": None,
        "from": body.get("FromEmailAddress"),
        "to": to,
        "cc": cc,
        "bcc": bcc,
        # SES counts quota and rate in recipients, not messages.
        "recipients": len(to) + len(cc) + len(bcc),
        "subject": simple.get("Subject", {}).get("Data"),
        "text": mime_body.get("Text", {}).get("Data"),
        "html": mime_body.get("Html", {}).get("Data"),
        "headers": [[header["Name"], header["Value"]] for header in simple.get("Headers", [])],
        "tags": {tag["Name"]: tag["Value"] for tag in body.get("EmailTags", [])},
        "configuration_set": body.get("ConfigurationSetName"),
        "reply_to": list(body.get("ReplyToAddresses", [])),
        # Raw content: the MIME message as sent (7-bit ASCII), for `email.message_from_string`.
        "raw": None if raw is None else base64.b64decode(raw).decode("ascii"),
        "authorized": authorized,
    }


def _is_signed(request: Request) -> bool:
    return request.headers.get("authorization", "").startswith("AWS4-HMAC-SHA256 ")


def _error(failure: Failure) -> Response:
    # restJson1: botocore reads the code from this header, the message from the body.
    return json_response(
        {"message": failure.message},
        status=failure.status,
        headers={"x-amzn-ErrorType": failure.code},
    )


async def _serve(host: str, port: int) -> None:
    stub = SesStub()
    await stub.start(host, port)
    # As ses-sender does (cli.py): a full collection scanning start-up's objects would hold
    # up the answers to whatever is in flight meanwhile, and the senders waiting on them.
    gc.collect()
    gc.freeze()
    print(stub.url.rsplit(":", 1)[1], flush=True)
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopped.set)
    try:
        await stopped.wait()
    finally:
        await stub.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description="SES v2 stand-in for tests")
    parser.add_argument("--host", default=HOST)
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    args = parser.parse_args()
    asyncio.run(_serve(args.host, args.port))


if __name__ == "__main__":
    main()
