"""Where a webhook may be sent: the URL policy, checked when an endpoint is created and again
before every attempt (a name's addresses may change between the two).

A webhook URL is a request the server makes on an admin's behalf, so it must not become a
way into the networks behind it: link-local and cloud metadata addresses are refused always,
loopback and private ones unless `WEBHOOK_ALLOW_PRIVATE_NETWORKS` is on. `check_url` and
`refusal` are pure; `resolve` asks the resolver and checks every address it gives.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Refused whatever the settings say: the metadata services of the clouds live here.
ALWAYS_REFUSED = (
    ipaddress.ip_network("169.254.0.0/16"),
    ipaddress.ip_network("fe80::/10"),
    ipaddress.ip_network("fd00:ec2::254/128"),
)


class RefusedUrl(ValueError):
    """The message says why, in words safe to show an admin."""


@dataclass(frozen=True, slots=True)
class Target:
    """A URL that passed the policy, split into what a connection needs."""

    url: str
    scheme: str
    host: str
    port: int
    # The path and query string, as sent on the request line.
    target: str


def check_url(url: str, *, production: bool) -> Target:
    """The URL's shape: http(s) (https in production), a host, no credentials in it."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise RefusedUrl("The URL is not valid.") from exc
    if parts.scheme not in ("http", "https"):
        raise RefusedUrl("The URL must start with https:// (or http:// outside production).")
    if production and parts.scheme != "https":
        raise RefusedUrl("The URL must use https in production.")
    if not parts.hostname:
        raise RefusedUrl("The URL has no host.")
    if parts.username is not None or parts.password is not None:
        raise RefusedUrl("The URL must not carry a user name or password.")
    return Target(
        url=url,
        scheme=parts.scheme,
        host=parts.hostname,
        port=port or (443 if parts.scheme == "https" else 80),
        target=_request_target(parts),
    )


def _request_target(parts: SplitResult) -> str:
    path = parts.path or "/"
    return f"{path}?{parts.query}" if parts.query else path


def refusal(address: IpAddress, *, allow_private: bool) -> str | None:
    """Why the server will not connect to `address`, or None if it may."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if any(address in network for network in ALWAYS_REFUSED):
        return f"{address}, a link-local or cloud metadata address, refused always"
    if address.is_multicast or address.is_unspecified:
        return f"{address}, not a unicast address"
    if not address.is_global and not allow_private:
        return f"{address}, a loopback or private address (WEBHOOK_ALLOW_PRIVATE_NETWORKS is off)"
    return None


async def resolve(target: Target, *, allow_private: bool) -> list[IpAddress]:
    """Every address the host resolves to, each allowed by the policy; the first one is
    where to connect, so that no second lookup can lead elsewhere."""
    try:
        literal: IpAddress | None = ipaddress.ip_address(target.host)
    except ValueError:
        literal = None
    if literal is not None:
        addresses = [literal]
    else:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                target.host, target.port, type=socket.SOCK_STREAM
            )
        except (OSError, UnicodeError) as exc:
            raise RefusedUrl(f"The host {target.host} could not be resolved.") from exc
        addresses = list(dict.fromkeys(ipaddress.ip_address(info[4][0]) for info in infos))
    if not addresses:
        raise RefusedUrl(f"The host {target.host} could not be resolved.")
    for address in addresses:
        if (why := refusal(address, allow_private=allow_private)) is not None:
            where = "The URL points at" if literal else f"The URL's host {target.host} resolves to"
            raise RefusedUrl(f"{where} {why}.")
    return addresses
