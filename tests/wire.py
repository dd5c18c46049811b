"""What the tests read off the wire: problem answers and JWTs taken apart without a key."""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Any

import httpx


def assert_problem(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == code


def b64(data: dict[str, Any]) -> str:
    """One JWT segment (unpadded base64url JSON)."""
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def unb64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def unverified(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims as any reader of the token sees them, without a key."""
    header, claims, _ = token.split(".")
    return json.loads(unb64(header)), json.loads(unb64(claims))


def iso(at: datetime) -> str:
    """A time as the API writes it: ISO 8601 in UTC with a `Z`."""
    return at.isoformat().replace("+00:00", "Z")
