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


@dataclass(frozen=True)
class PairedDevice:
    device_id: str
    device_token: str
    device_secret: str

    def credentials(self) -> dict[str, str]:
        return {"deviceToken": self.device_token, "deviceSecret": self.device_secret}


async def pair_device(
    admin_client: httpx.AsyncClient, device_client: httpx.AsyncClient, csrf: str
) -> PairedDevice:
    """Mint a code as the signed-in admin and redeem it by QR, as a phone would."""
    minted = await mint(admin_client, csrf)
    response = await device_client.post(REGISTER, json=FakePhone().scan_body(minted["pairingUri"]))
    assert response.status_code == 201, response.text
    body = response.json()
    return PairedDevice(body["deviceId"], body["deviceToken"], body["deviceSecret"])


async def access_token(device_client: httpx.AsyncClient, device: PairedDevice) -> str:
    response = await device_client.post("/api/devices/token", json=device.credentials())
    assert response.status_code == 200, response.text
    return str(response.json()["accessToken"])


async def heartbeat(device_client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await device_client.post(
        "/api/devices/heartbeat", json={}, headers={"Authorization": f"Bearer {token}"}
    )


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def rotate_credentials(
    device_client: httpx.AsyncClient, device: PairedDevice
) -> PairedDevice:
    """Trade the pair for a new one, as the app does before its credentials expire."""
    response = await device_client.post(
        "/api/devices/credentials/rotate", json=device.credentials()
    )
    assert response.status_code == 200, response.text
    body = response.json()
    return PairedDevice(body["deviceId"], body["deviceToken"], body["deviceSecret"])
