"""At sending time too, a receiver's name must resolve to public addresses only (a name that
moved to a private address after its subscription was checked is not called)."""

from __future__ import annotations

import pytest

from casedesk.services.effects.webhook_sender import PublicOnlyResolver
from casedesk.services.effects.webhook_subscriptions import is_public_address


def test_loopback_link_local_private_and_mapped_addresses_are_not_public() -> None:
    for address in ("127.0.0.1", "10.0.0.5", "172.16.1.1", "192.168.0.1", "169.254.169.254", "::1", "fe80::1",
                    "fc00::1", "::ffff:127.0.0.1", "0.0.0.0", "224.0.0.1"):
        assert not is_public_address(address), address
    for address in ("93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946", "::ffff:93.184.216.34"):
        assert is_public_address(address), address


async def test_the_sender_will_not_connect_to_a_name_resolving_to_loopback() -> None:
    resolver = PublicOnlyResolver()
    try:
        with pytest.raises(OSError, match="private address"):
            await resolver.resolve("localhost", 80)
    finally:
        await resolver.close()
