from __future__ import annotations

import pytest

from ses_sender.web.client import TrustedProxies

PROXIES = TrustedProxies(["127.0.0.1", "10.0.0.0/8", "::1"])


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "client"),
    [
        ("203.0.113.7", None, "203.0.113.7"),  # no proxy
        ("203.0.113.7", "40.107.22.60", "203.0.113.7"),  # a stranger's header is ignored
        ("127.0.0.1", "40.107.22.60", "40.107.22.60"),
        ("127.0.0.1", "198.51.100.1, 40.107.22.60", "40.107.22.60"),  # the nearest hop
        ("127.0.0.1", "40.107.22.60, 10.1.1.1", "40.107.22.60"),  # past our own proxies
        ("127.0.0.1", "10.1.1.1, 10.2.2.2", "127.0.0.1"),  # nothing but our own
        ("127.0.0.1", "not-an-address", None),
        ("::1", "2001:db8::5", "2001:db8::5"),
        (None, "40.107.22.60", None),
        ("testclient", "40.107.22.60", "testclient"),  # no IP peer: nothing to match
        # An IPv4 client of a dual-stack listener, and hops written the same way, are IPv4.
        ("::ffff:203.0.113.7", None, "203.0.113.7"),
        ("::ffff:127.0.0.1", "40.107.22.60", "40.107.22.60"),
        ("127.0.0.1", "::ffff:40.107.22.60, ::ffff:10.1.1.1", "40.107.22.60"),
    ],
)
def test_the_client_is_the_nearest_address_not_ours(
    peer: str | None, forwarded_for: str | None, client: str | None
) -> None:
    assert PROXIES.client_address(peer, forwarded_for) == client
