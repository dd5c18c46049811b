from __future__ import annotations

import pytest
from starlette.requests import Request

from app.auth.client_ip import client_ip


def _request(peer: str, forwarded: str | None) -> Request:
    headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded else []
    return Request({"type": "http", "client": (peer, 1234), "headers": headers})


@pytest.mark.parametrize(
    ("hops", "forwarded", "expected"),
    [
        (0, "198.51.100.9", "10.0.0.1"),  # no trusted proxy: the header is ignored
        (1, "198.51.100.9", "198.51.100.9"),
        (1, "6.6.6.6, 198.51.100.9", "198.51.100.9"),  # spoofed left part is skipped
        (2, "6.6.6.6, 198.51.100.9, 10.0.0.2", "198.51.100.9"),
        (1, None, "10.0.0.1"),
    ],
)
def test_client_ip_trusts_only_configured_hops(
    hops: int, forwarded: str | None, expected: str
) -> None:
    assert client_ip(_request("10.0.0.1", forwarded), hops) == expected
