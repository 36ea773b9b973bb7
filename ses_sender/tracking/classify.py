"""Who made an open or a click: a person, or a machine (a mail privacy proxy's prefetch, a
security gateway's link scanner), and why we think so.

What one request shows (its method, user agent and address) is judged here, against the
signatures in `machine_signatures.json`; what takes the recipient's other events (a click too
soon after the send, every link at once, the honeypot) is judged where they are read
(`service.record_hits`).
"""

from __future__ import annotations

import enum
import ipaddress
import json
import re
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class Reason(enum.StrEnum):
    # human
    DIRECT = "direct"  # nothing says machine
    PROXY = "proxy"  # an image proxy (Gmail, Yahoo) fetching for a person who opened it
    UNCLASSIFIED = "unclassified"  # recorded before events were classified
    # machine
    APPLE_MPP = "apple-mpp"  # Apple Mail Privacy Protection prefetches every image
    HEAD = "head"  # a HEAD request: a checker, never a browser following a link
    SCANNER_AGENT = "scanner-agent"  # an automated client's user agent
    SCANNER_NETWORK = "scanner-network"  # from a security gateway's address space
    TOO_SOON = "too-soon"  # within MACHINE_CLICK_WINDOW_SECONDS of the send
    BURST = "burst"  # every link of the email, in one burst
    HONEYPOT = "honeypot"  # the hidden link, or in the burst that followed it


@dataclass(frozen=True, slots=True)
class Verdict:
    machine: bool
    reason: Reason


HUMAN = Verdict(False, Reason.DIRECT)


@dataclass(frozen=True, slots=True)
class RequestShape:
    """What an open's or a click's HTTP request says of its sender."""

    method: str
    user_agent: str
    client_address: str | None


@dataclass(frozen=True, slots=True)
class Signatures:
    apple_networks: tuple[IpNetwork, ...]
    apple_user_agents: frozenset[str]
    proxy_agents: tuple[str, ...]  # lower case
    scanner_networks: tuple[IpNetwork, ...]
    automated_agents: tuple[str, ...]  # lower case
    # The same, ready for every hit (a click is judged in ~5 µs instead of ~10): the networks
    # as integer ranges, the agents' substrings as one pattern.
    _apple_ranges: tuple[_Range, ...] = field(init=False, repr=False, compare=False)
    _scanner_ranges: tuple[_Range, ...] = field(init=False, repr=False, compare=False)
    _proxy_pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)
    _automated_pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_apple_ranges", _ranges(self.apple_networks))
        object.__setattr__(self, "_scanner_ranges", _ranges(self.scanner_networks))
        object.__setattr__(self, "_proxy_pattern", _any_of(self.proxy_agents))
        object.__setattr__(self, "_automated_pattern", _any_of(self.automated_agents))

    @classmethod
    def packaged(cls) -> Signatures:
        text = resources.files(__package__).joinpath("machine_signatures.json").read_text()
        return cls.from_document(json.loads(text))

    @classmethod
    def from_document(cls, document: dict[str, Any]) -> Signatures:
        apple = document["apple_mail_privacy_protection"]
        return cls(
            apple_networks=_networks(apple["networks"]),
            apple_user_agents=frozenset(apple["user_agents"]),
            proxy_agents=_lower(document["image_proxies"]["user_agent_contains"]),
            scanner_networks=tuple(
                network
                for scanner in document["scanners"]
                for network in _networks(scanner["networks"])
            ),
            automated_agents=_lower(document["automated_user_agents"]["contains"]),
        )

    def judge_open(self, shape: RequestShape) -> Verdict:
        agent = shape.user_agent.lower()
        if self._proxy_pattern.search(agent):
            return Verdict(False, Reason.PROXY)
        if shape.user_agent in self.apple_user_agents or _within(
            shape.client_address, self._apple_ranges
        ):
            return Verdict(True, Reason.APPLE_MPP)
        return self._judge_shape(shape) or HUMAN

    def judge_click(self, shape: RequestShape) -> Verdict | None:
        """A machine's click by its request alone; None when the request looks like a
        person's (the recipient's other clicks may still say machine)."""
        return self._judge_shape(shape)

    def _judge_shape(self, shape: RequestShape) -> Verdict | None:
        if shape.method == "HEAD":
            return Verdict(True, Reason.HEAD)
        agent = shape.user_agent.lower()
        if not agent or self._automated_pattern.search(agent):
            return Verdict(True, Reason.SCANNER_AGENT)
        if _within(shape.client_address, self._scanner_ranges):
            return Verdict(True, Reason.SCANNER_NETWORK)
        return None


def _networks(entries: list[str]) -> tuple[IpNetwork, ...]:
    return tuple(ipaddress.ip_network(entry) for entry in entries)


def _lower(entries: list[str]) -> tuple[str, ...]:
    return tuple(entry.lower() for entry in entries)


_Range = tuple[int, int, int]  # IP version, first and last address as integers


def _ranges(networks: tuple[IpNetwork, ...]) -> tuple[_Range, ...]:
    return tuple(
        (network.version, int(network.network_address), int(network.broadcast_address))
        for network in networks
    )


def _any_of(substrings: tuple[str, ...]) -> re.Pattern[str]:
    """A pattern found wherever one of `substrings` is (none: found nowhere)."""
    if not substrings:
        return re.compile(r"(?!)")
    return re.compile("|".join(re.escape(substring) for substring in substrings))


def _within(address: str | None, ranges: tuple[_Range, ...]) -> bool:
    if address is None:
        return False
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return False
    version, number = parsed.version, int(parsed)
    return any(v == version and first <= number <= last for v, first, last in ranges)
