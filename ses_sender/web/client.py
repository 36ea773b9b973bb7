"""The address of the client behind a request: the peer's, or, when the peer is a proxy we
trust (FORWARDED_ALLOW_IPS), the nearest address in X-Forwarded-For that is not one of ours.

Anyone can send X-Forwarded-For; only our own proxies' word is taken, and of the list only the
part they appended (the right end), since the client wrote the rest itself.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from fastapi import Request

from ses_sender.web.provided import Provided

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class TrustedProxies:
    def __init__(self, networks: Iterable[str]) -> None:
        self._networks = tuple(ipaddress.ip_network(entry, strict=False) for entry in networks)

    def client_address(self, peer: str | None, forwarded_for: str | None) -> str | None:
        if peer is None or not forwarded_for or not self._trusts(peer):
            return peer
        for hop in reversed([part.strip() for part in forwarded_for.split(",")]):
            if not _is_address(hop):
                return None  # garbled by someone: no address we can vouch for
            if not self._trusts(hop):
                return hop
        return peer

    def _trusts(self, address: str) -> bool:
        try:
            parsed = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(parsed in network for network in self._networks)


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


TRUSTED_PROXIES = Provided[TrustedProxies]("trusted proxies")


def client_address(request: Request) -> str | None:
    peer = request.client.host if request.client else None
    forwarded_for = ",".join(request.headers.getlist("x-forwarded-for"))
    return TRUSTED_PROXIES.of(request).client_address(peer, forwarded_for)
