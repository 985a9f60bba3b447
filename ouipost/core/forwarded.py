"""The client behind a trusted reverse proxy.

Behind nginx on the same host every request comes from 127.0.0.1: the audit log, the admin
sign-in lockout and the loopback-only /metrics would all see the proxy, not the client. With
OUIPOST_TRUSTED_PROXIES naming the proxies, a request whose peer is one of them is taken to come
from the address X-Forwarded-For gives: the rightmost one that is not itself a trusted proxy (each
proxy appends the address it received the request from, so addresses left of the last trusted hop
are whatever the client chose to send and are never believed). A request from anywhere else keeps
its peer address, whatever headers it carries.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Middleware

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
FORWARDING_HEADERS = ("Forwarded", "X-Forwarded-For", "X-Real-IP")


def ip_address_of(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The IP address a peer or header value names (IPv4-mapped IPv6 as IPv4), or None."""
    try:
        address = ipaddress.ip_address(value.strip().strip("[]"))
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def is_trusted(remote: str | None, proxies: Sequence[Network]) -> bool:
    address = ip_address_of(remote or "")
    return address is not None and any(address in network for network in proxies)


def client_address(forwarded_for: Iterable[str], proxies: Sequence[Network]) -> str | None:
    """The client an X-Forwarded-For chain (its header values, in order) names, or None when the
    chain is empty or its last untrusted hop is not an IP address."""
    hops = [hop.strip() for value in forwarded_for for hop in value.split(",") if hop.strip()]
    for hop in reversed(hops):
        address = ip_address_of(hop)
        if address is None:
            return None
        if not any(address in network for network in proxies):
            return str(address)
    first = ip_address_of(hops[0]) if hops else None  # every hop is a proxy of ours: the first one
    return str(first) if first is not None else None


def is_forwarded(headers: Mapping[str, Any]) -> bool:
    """Whether a proxy says it passed this request on (any forwarding header)."""
    return any(name in headers for name in FORWARDING_HEADERS)


def forwarded_middleware(proxies: Sequence[Network]) -> Middleware:
    """The middleware that gives a request from one of `proxies` its client's address (first in
    the chain, so that every other middleware and handler sees the client)."""

    @web.middleware
    async def forwarded(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        if is_trusted(request.remote, proxies):
            client = client_address(request.headers.getall("X-Forwarded-For", ()), proxies)
            if client is not None:
                request = request.clone(remote=client)
        return await handler(request)

    return forwarded
