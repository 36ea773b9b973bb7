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
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class TrustedProxies:
    def __init__(self, networks: Iterable[str]) -> None:
        self._networks = tuple(ipaddress.ip_network(entry, strict=False) for entry in networks)

    def client_address(self, peer: str | None, forwarded_for: str | None) -> str | None:
        peer_address = _parsed(peer) if peer is not None else None
        if peer_address is None:
            return peer  # not an IP peer (a Unix socket): nothing to match
        if not forwarded_for or not self._trusts(peer_address):
            return str(peer_address)
        for hop in reversed([part.strip() for part in forwarded_for.split(",")]):
            address = _parsed(hop)
            if address is None:
                return None  # garbled by someone: no address we can vouch for
            if not self._trusts(address):
                return str(address)
        return str(peer_address)

    def _trusts(self, address: IpAddress) -> bool:
        return any(address in network for network in self._networks)


def _parsed(text: str) -> IpAddress | None:
    """The address `text` names, if any. An IPv4 client of a dual-stack listener (`SERVER_BIND=::`)
    shows as `::ffff:a.b.c.d`: it is `a.b.c.d`, so that IPv4 entries of FORWARDED_ALLOW_IPS
    and the IPv4 ranges of the machine signatures match it."""
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
    return mapped or address


TRUSTED_PROXIES = Provided[TrustedProxies]("trusted proxies")


def client_address(request: Request) -> str | None:
    peer = request.client.host if request.client else None
    forwarded_for = ",".join(request.headers.getlist("x-forwarded-for"))
    return TRUSTED_PROXIES.of(request).client_address(peer, forwarded_for)
