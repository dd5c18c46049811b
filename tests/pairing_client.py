"""What a scanner app does on the wire, for integration tests (the simulator does it for real)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from app.auth import pkce

REGISTER = "/api/devices/register"
POLL = "/api/devices/register/poll"
PUSH_TOKEN = "a1b2c3d4" * 8


def device_fields(**overrides: Any) -> dict[str, Any]:
    return {
        "label": "Dock scanner 1",
        "platform": "ios",
        "model": "iPhone15,2",
        "osVersion": "17.5",
        "appVersion": "2.4.0",
        "apnsEnvironment": "production",
        "capabilities": ["scan", "push"],
        "pushToken": PUSH_TOKEN,
        **overrides,
    }


@dataclass
class FakePhone:
    """Makes its own PKCE pair, as the real app does."""

    verifier: str = field(default_factory=pkce.new_verifier)

    @property
    def challenge(self) -> str:
        return pkce.challenge_for(self.verifier)

    def scan_body(self, pairing_uri: str, **overrides: Any) -> dict[str, Any]:
        query = parse_qs(urlsplit(pairing_uri).query)
        return {
            "code": query["code"][0],
            "pairingProof": query["proof"][0],
            "codeChallenge": self.challenge,
            **device_fields(),
            **overrides,
        }

    def typed_body(self, code: str, **overrides: Any) -> dict[str, Any]:
        return {"code": code, "codeChallenge": self.challenge, **device_fields(), **overrides}

    async def poll(self, client: httpx.AsyncClient, pairing_id: str) -> httpx.Response:
        return await client.post(
            POLL, json={"pairingId": pairing_id, "codeVerifier": self.verifier}
        )


async def mint(client: httpx.AsyncClient, csrf: str) -> dict[str, Any]:
    response = await client.post("/api/v1/admin/pairing-sessions", headers={"X-CSRF-Token": csrf})
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]
