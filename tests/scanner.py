"""What a scanner app sends, built from the simulator's wire types, for tests that read the answer.

Tests that only need a paired device let `simulator.protocol.DeviceApi` do the talking; these
bodies are for the tests that assert on the raw response (a status, a problem, a header).
"""

from __future__ import annotations

from typing import Any

import httpx

from simulator.protocol import HEARTBEAT, DeviceFields, PkcePair, parse_pairing_uri

PUSH_TOKEN = "a1b2c3d4" * 8
DOCK_SCANNER = DeviceFields(
    label="Dock scanner 1",
    platform="ios",
    model="iPhone15,2",
    os_version="17.5",
    app_version="2.4.0",
    apns_environment="production",
    capabilities=("scan", "push"),
    push_token=PUSH_TOKEN,
)


def scan_body(
    pairing_uri: str,
    *,
    pkce: PkcePair | None = None,
    fields: DeviceFields = DOCK_SCANNER,
    **overrides: Any,
) -> dict[str, Any]:
    """`POST /api/devices/register` after scanning the console's QR code."""
    scanned = parse_pairing_uri(pairing_uri)
    return {
        "code": scanned.code,
        "pairingProof": scanned.proof,
        "codeChallenge": (pkce or PkcePair.generate()).challenge,
        **fields.wire(),
        **overrides,
    }


def typed_body(
    code: str,
    *,
    pkce: PkcePair | None = None,
    fields: DeviceFields = DOCK_SCANNER,
    **overrides: Any,
) -> dict[str, Any]:
    """`POST /api/devices/register` with a code a person typed: no proof."""
    challenge = (pkce or PkcePair.generate()).challenge
    return {"code": code, "codeChallenge": challenge, **fields.wire(), **overrides}


def poll_body(pairing_id: str, pkce: PkcePair) -> dict[str, str]:
    return {"pairingId": pairing_id, "codeVerifier": pkce.verifier}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def heartbeat(device_client: httpx.AsyncClient, token: str) -> httpx.Response:
    """An empty heartbeat whose answer the test reads."""
    return await device_client.post(HEARTBEAT, json={}, headers=bearer(token))
