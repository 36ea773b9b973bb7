"""Which addresses a webhook may reach: the outside world only, unless `WEBHOOK_ALLOW_PRIVATE`
says the receivers are in the deployment's own network.

Checked when a webhook is registered and again on every connection, against the addresses the
connection really uses: the resolver below is the one that hands the connector its addresses,
so a name that resolves somewhere else later (DNS rebinding) still reaches nothing inside.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from ipaddress import IPv4Address, IPv6Address

from aiohttp.abc import ResolveResult
from aiohttp.resolver import ThreadedResolver

# Cloud metadata services by name; their addresses (169.254.169.254, fd00:ec2::254) are
# link-local and unique-local, refused as such.
METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata.goog", "metadata"})
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
# Special ranges Python's `is_global` (3.11) still calls global; no host outside has one.
_SPECIAL = tuple(
    ipaddress.ip_network(network)
    for network in (
        # IPv4-compatible IPv6 (::a.b.c.d), deprecated since 2006 (RFC 4291); some stacks
        # reach the IPv4 address inside it (::127.0.0.1).
        "::/96",
        # IPv4-translated IPv6 (::ffff:0:a.b.c.d, RFC 2765): what a translator reaches is the
        # IPv4 address inside.
        "::ffff:0:0:0/96",
        # The local-use IPv4/IPv6 translation prefix (RFC 8215): a translator of one's own.
        "64:ff9b:1::/48",
        # The 6to4 relay anycast prefix (RFC 3068, deprecated by RFC 7526).
        "192.88.99.0/24",
    )
)


class InsideAddress(OSError):
    """A host that is, or resolves to, an address inside the network."""


def is_outside(address: IPv4Address | IPv6Address) -> bool:
    """Globally routable unicast: not loopback, private, link-local, shared (CGNAT), unique-
    local, site-local, multicast or reserved, nor an IPv6 form of one of those, nor in one of
    the special ranges above."""
    if isinstance(address, IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in _NAT64:
            embedded = IPv4Address(int(address) & 0xFFFF_FFFF)
        if (embedded is not None and not is_outside(embedded)) or address.is_site_local:
            return False
    if any(address in network for network in _SPECIAL):
        return False
    return address.is_global and not address.is_multicast


def check_host(host: str) -> None:
    """Refuse, without resolving, a name that is inside by definition or an address inside."""
    name = host.rstrip(".").lower()
    if name in METADATA_HOSTS or name == "localhost" or name.endswith(".localhost"):
        raise InsideAddress(f"{host} is inside the network")
    try:
        literal = ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return
    if not is_outside(literal):
        raise InsideAddress(f"{host} is an address inside the network")


async def check_resolves_outside(host: str) -> None:
    """Refuse a host any of whose addresses is inside. A name that does not resolve now passes:
    every connection checks again."""
    check_host(host)
    try:
        found = await asyncio.get_running_loop().getaddrinfo(host, 443, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        return
    for *_, sockaddr in found:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%")[0])
        if not is_outside(address):
            raise InsideAddress(f"{host} resolves to {address}, inside the network")


class OutsideOnlyResolver(ThreadedResolver):
    """The connector's resolver: the addresses of a name, refused whole if any is inside."""

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        check_host(host)
        results = await super().resolve(host, port, family)
        for result in results:
            address = ipaddress.ip_address(result["host"].split("%")[0])
            if not is_outside(address):
                raise InsideAddress(f"{host} resolves to {address}, inside the network")
        return results
