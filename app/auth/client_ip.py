"""The client's address, trusting X-Forwarded-For only for the configured proxy hops."""

from __future__ import annotations

from starlette.requests import HTTPConnection


def client_ip(connection: HTTPConnection, trusted_hops: int) -> str | None:
    direct = connection.client.host if connection.client else None
    if trusted_hops <= 0:
        return direct
    forwarded = [
        part.strip()
        for part in connection.headers.get("x-forwarded-for", "").split(",")
        if part.strip()
    ]
    # Each trusted proxy appended the address it saw; anything further left is client-supplied.
    if len(forwarded) >= trusted_hops:
        return forwarded[-trusted_hops]
    return forwarded[0] if forwarded else direct
