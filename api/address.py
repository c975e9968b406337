"""The client's address. Behind a reverse proxy the peer is the proxy, and the client is named
in X-Forwarded-For; anyone can send that header, so it is believed only from the proxies
listed in BETJEE_TRUSTED_PROXIES (addresses or networks, comma-separated; none by default).
From a trusted peer, the header is read right to left, skipping trusted proxies: the first
address that is not one is the client (the left-most one if all are)."""

from __future__ import annotations

import ipaddress
import os

from starlette.requests import Request

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def trusted_proxies(value: str | None = None) -> tuple[Network, ...]:
    value = os.environ.get("BETJEE_TRUSTED_PROXIES", "") if value is None else value
    return tuple(ipaddress.ip_network(v.strip(), strict=False) for v in value.split(",")
                 if v.strip())


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip().split("%", 1)[0])  # without an IPv6 zone
    except ValueError:
        return None


def client_address(request: Request, trusted: tuple[Network, ...]) -> str | None:
    peer = request.client.host if request.client else None
    if peer is None or not trusted:
        return peer
    address = _ip(peer)
    if address is None or not any(address in net for net in trusted):
        return peer
    hops = [h for value in request.headers.getlist("x-forwarded-for") for h in value.split(",")]
    for hop in reversed(hops):
        ip = _ip(hop)
        if ip is None:  # a garbled entry: nothing left of it can be believed
            break
        address = ip
        if not any(ip in net for net in trusted):
            break
    return str(address)
