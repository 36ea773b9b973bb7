"""moto, plus what it lacks for `setup-aws` and `doctor`: a loopback front for moto_server.

Point a client's `AWS_ENDPOINT_URL` at `MotoComplement.url`. It answers these calls itself and
forwards every other request to moto unchanged:

* sesv2 `GetAccount`: moto has none (404). Answered from `account`, which a test may change.
* sesv2 configuration-set event destinations (Get, Create, Update): moto has none (404). Kept here,
  for configuration sets that exist in moto.
* sesv2 `GetEmailIdentity`: moto reports every identity as not verified for sending, although it
  sends from it. Answered as SES does: verified once verification succeeded, which in moto is at
  once, except for the names a test puts in `pending_identities`.
* SNS `SignatureVersion`: moto neither keeps nor reports it. Remembered from CreateTopic and
  SetTopicAttributes and added to moto's GetTopicAttributes answer.

The server runs on an event loop of its own in a background thread, so tests may call boto3 and
run subprocesses synchronously while it answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs
from xml.sax.saxutils import escape

import aiohttp
from aiohttp import web

HOST = "127.0.0.1"
EVENT_TYPES = frozenset(
    {
        "SEND",
        "REJECT",
        "BOUNCE",
        "COMPLAINT",
        "DELIVERY",
        "OPEN",
        "CLICK",
        "RENDERING_FAILURE",
        "DELIVERY_DELAY",
        "SUBSCRIPTION",
    }
)
# Hop-by-hop and framing headers: aiohttp writes its own.
_NOT_FORWARDED = frozenset(
    {"host", "content-length", "transfer-encoding", "connection", "content-encoding"}
)


def default_account() -> dict[str, Any]:
    return {
        "SendQuota": {"Max24HourSend": 50_000.0, "MaxSendRate": 14.0, "SentLast24Hours": 0.0},
        "SendingEnabled": True,
        "ProductionAccessEnabled": True,
        "EnforcementStatus": "HEALTHY",
        "DedicatedIpAutoWarmupEnabled": False,
    }


class MotoComplement:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.url = ""
        self.account = default_account()
        self.pending_identities: set[str] = set()
        # configuration set -> destination name -> EventDestinationDefinition
        self.event_destinations: dict[str, dict[str, dict[str, Any]]] = {}
        self.signature_versions: dict[str, str] = {}  # topic ARN -> SignatureVersion
        self._session: aiohttp.ClientSession | None = None
        self._runner: web.AppRunner | None = None

    def reset(self) -> None:
        self.account = default_account()
        self.pending_identities.clear()
        self.event_destinations.clear()
        self.signature_versions.clear()

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(trust_env=False)
        app = web.Application()
        app.router.add_get("/v2/email/account", self._get_account)
        destinations = "/v2/email/configuration-sets/{name}/event-destinations"
        app.router.add_get(destinations, self._get_destinations)
        app.router.add_post(destinations, self._create_destination)
        app.router.add_put(destinations + "/{destination}", self._update_destination)
        app.router.add_get("/v2/email/identities/{identity}", self._get_identity)
        app.router.add_post("/", self._sns)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, HOST, 0).start()
        self.url = f"http://{HOST}:{self._runner.addresses[0][1]}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    # sesv2

    async def _get_account(self, request: web.Request) -> web.Response:
        return web.json_response(self.account)

    async def _get_destinations(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if not await self._configuration_set_exists(request, name):
            return _not_found(f"Configuration set <{name}> does not exist.")
        destinations = self.event_destinations.get(name, {})
        return web.json_response(
            {
                "EventDestinations": [
                    {"Name": destination, **definition}
                    for destination, definition in destinations.items()
                ]
            }
        )

    async def _create_destination(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        body = await request.json()
        if not await self._configuration_set_exists(request, name):
            return _not_found(f"Configuration set <{name}> does not exist.")
        destinations = self.event_destinations.setdefault(name, {})
        destination = body.get("EventDestinationName", "")
        if destination in destinations:
            return _error(400, "AlreadyExistsException", f"{destination} already exists.")
        return self._store_destination(name, destination, body.get("EventDestination"))

    async def _update_destination(self, request: web.Request) -> web.Response:
        name, destination = request.match_info["name"], request.match_info["destination"]
        body = await request.json()
        if destination not in self.event_destinations.get(name, {}):
            return _not_found(f"Event destination <{destination}> does not exist.")
        return self._store_destination(name, destination, body.get("EventDestination"))

    def _store_destination(self, name: str, destination: str, definition: Any) -> web.Response:
        if not isinstance(definition, dict):
            return _error(400, "BadRequestException", "EventDestination is required.")
        types = definition.get("MatchingEventTypes")
        if not types or not set(types) <= EVENT_TYPES:
            return _error(400, "BadRequestException", "MatchingEventTypes is invalid.")
        self.event_destinations[name][destination] = definition
        return web.json_response({})

    async def _configuration_set_exists(self, request: web.Request, name: str) -> bool:
        status, _headers, _body = await self._upstream(
            "GET", f"/v2/email/configuration-sets/{name}", request.headers, b""
        )
        return status == 200

    async def _get_identity(self, request: web.Request) -> web.Response:
        status, headers, body = await self._upstream(
            request.method, request.path_qs, request.headers, await request.read()
        )
        if status != 200:
            return web.Response(status=status, headers=headers, body=body)
        identity = json.loads(body)
        pending = request.match_info["identity"] in self.pending_identities
        if pending:
            identity["VerificationStatus"] = "PENDING"
        identity["VerifiedForSendingStatus"] = identity.get("VerificationStatus") == "SUCCESS"
        return web.json_response(identity)

    # SNS (query protocol: form-encoded POST to /, XML answers)

    async def _sns(self, request: web.Request) -> web.Response:
        body = await request.read()
        form = {key: values[0] for key, values in parse_qs(body.decode()).items()}
        status, headers, answer = await self._upstream("POST", "/", request.headers, body)
        if status == 200:
            answer = self._complete_sns(form, answer)
        return web.Response(status=status, headers=headers, body=answer)

    def _complete_sns(self, form: dict[str, str], answer: bytes) -> bytes:
        action = form.get("Action")
        if action == "CreateTopic":
            version = _attribute(form, "SignatureVersion")
            match = re.search(rb"<TopicArn>([^<]+)</TopicArn>", answer)
            if version is not None and match is not None:
                self.signature_versions[match.group(1).decode()] = version
        elif action == "SetTopicAttributes" and form.get("AttributeName") == "SignatureVersion":
            self.signature_versions[form["TopicArn"]] = form["AttributeValue"]
        elif action == "GetTopicAttributes" and form.get("TopicArn") in self.signature_versions:
            version = escape(self.signature_versions[form["TopicArn"]])
            entry = f"<entry><key>SignatureVersion</key><value>{version}</value></entry>"
            answer = answer.replace(b"</Attributes>", entry.encode() + b"</Attributes>", 1)
        return answer

    # everything else

    async def _forward(self, request: web.Request) -> web.Response:
        status, headers, body = await self._upstream(
            request.method, request.path_qs, request.headers, await request.read()
        )
        return web.Response(status=status, headers=headers, body=body)

    async def _upstream(
        self, method: str, path: str, headers: Any, body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        assert self._session is not None
        sent = {
            name: value for name, value in headers.items() if name.lower() not in _NOT_FORWARDED
        }
        async with self._session.request(
            method, f"{self.upstream}{path}", headers=sent, data=body
        ) as response:
            answer = await response.read()
            kept = {
                name: value
                for name, value in response.headers.items()
                if name.lower() not in _NOT_FORWARDED
            }
            return response.status, kept, answer


def _attribute(form: dict[str, str], name: str) -> str | None:
    """The value of attribute `name` in a query-protocol `Attributes.entry.N.key/value` map."""
    for key, value in form.items():
        if key.startswith("Attributes.entry.") and key.endswith(".key") and value == name:
            return form.get(key.removesuffix(".key") + ".value")
    return None


def _not_found(message: str) -> web.Response:
    return _error(404, "NotFoundException", message)


def _error(status: int, code: str, message: str) -> web.Response:
    # restJson1: botocore reads the code from this header, the message from the body.
    return web.json_response(
        {"message": message}, status=status, headers={"x-amzn-ErrorType": code}
    )


@contextlib.contextmanager
def run_moto_complement(upstream: str) -> Iterator[MotoComplement]:
    """Start a `MotoComplement` for `upstream` on a background thread's event loop."""
    complement = MotoComplement(upstream)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="moto-complement", daemon=True)
    thread.start()
    try:
        asyncio.run_coroutine_threadsafe(complement.start(), loop).result(timeout=10)
        yield complement
    finally:
        asyncio.run_coroutine_threadsafe(complement.stop(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()
