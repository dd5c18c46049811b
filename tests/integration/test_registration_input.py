"""Every bad input to the device API gets problem+json with its documented code."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from app.edge.runtime import runtime
from app.models import AuditEvent, Device
from app.models.user import Role
from simulator.protocol import POLL, REGISTER, PkcePair
from tests.factories import make_user, mint_code, sign_in
from tests.scanner import DOCK_SCANNER, scan_body, typed_body

VALID_CHALLENGE = PkcePair.generate().challenge
BASE = {"code": "K7QX-M2PD", "codeChallenge": VALID_CHALLENGE, **DOCK_SCANNER.wire()}


def body(**changes: Any) -> dict[str, Any]:
    merged = {**BASE, **changes}
    return {k: v for k, v in merged.items() if v is not _DROP}


_DROP = object()

BAD_REGISTRATIONS = [
    ("label-too-long", body(label="x" * 121), "label"),
    ("label-blank", body(label="   "), "label"),
    ("label-wrong-type", body(label=42), "label"),
    ("unknown-platform", body(platform="android"), "platform"),
    ("unknown-apns-environment", body(apnsEnvironment="staging"), "apnsEnvironment"),
    ("unknown-capability", body(capabilities=["scan", "teleport"]), "capabilities"),
    ("empty-capabilities", body(capabilities=[]), "capabilities"),
    ("capabilities-not-a-list", body(capabilities="scan"), "capabilities"),
    ("unknown-extra-field", body(isAdmin=True), "isAdmin"),
    ("owner-mass-assignment", body(ownerUserId="someone"), "ownerUserId"),
    ("malformed-challenge", body(codeChallenge="short"), "codeChallenge"),
    ("plain-challenge", body(codeChallenge="=" * 43), "codeChallenge"),
    ("malformed-proof", body(pairingProof="has spaces " * 5), "pairingProof"),
    ("short-proof", body(pairingProof="a" * 42), "pairingProof"),
    ("malformed-code", body(code="K7QX-M2P"), "code"),
    ("code-with-u", body(code="UUUU-UUUU"), "code"),
    ("push-token-not-hex", body(pushToken="zz" * 8), "pushToken"),
    ("push-token-too-long", body(pushToken="a" * 201), "pushToken"),
    ("model-too-long", body(model="m" * 65), "model"),
    ("missing-code", body(code=_DROP), "code"),
    ("missing-label", body(label=_DROP), "label"),
]


@pytest.mark.parametrize(
    ("payload", "field"),
    [pytest.param(p, f, id=name) for name, p, f in BAD_REGISTRATIONS],
)
async def test_register_rejects_invalid_fields(
    device_client: httpx.AsyncClient, payload: dict[str, Any], field: str
) -> None:
    response = await device_client.post(REGISTER, json=payload)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["code"] == "validation_error"
    assert field in {error["field"] for error in problem["errors"]}
    assert await Device.all().count() == 0


@pytest.mark.parametrize(
    ("kwargs", "status", "code"),
    [
        (
            {"content": b"code=K7QX", "headers": {"content-type": "text/plain"}},
            415,
            "unsupported_media_type",
        ),
        ({"content": b"{}", "headers": {}}, 415, "unsupported_media_type"),
        (
            {"content": b'{"code": ', "headers": {"content-type": "application/json"}},
            400,
            "validation_error",
        ),
        ({"json": body(label="x" * 17_000)}, 413, "payload_too_large"),
    ],
    ids=["text-plain", "no-content-type", "truncated-json", "oversized"],
)
async def test_register_rejects_bad_bodies(
    device_client: httpx.AsyncClient, kwargs: dict[str, Any], status: int, code: str
) -> None:
    response = await device_client.post(REGISTER, **kwargs)
    assert response.status_code == status
    assert response.json()["code"] == code


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"pairingId": "not-a-uuid", "codeVerifier": "a" * 43}, "pairingId"),
        (
            {"pairingId": "00000000-0000-0000-0000-000000000000", "codeVerifier": "short"},
            "codeVerifier",
        ),
        ({"pairingId": "00000000-0000-0000-0000-000000000000"}, "codeVerifier"),
        (
            {"pairingId": "00000000-0000-0000-0000-000000000000", "codeVerifier": "a" * 43, "x": 1},
            "x",
        ),
    ],
    ids=["bad-uuid", "short-verifier", "missing-verifier", "extra-field"],
)
async def test_poll_rejects_invalid_fields(
    device_client: httpx.AsyncClient, payload: dict[str, Any], field: str
) -> None:
    response = await device_client.post(POLL, json=payload)
    assert response.status_code == 400
    assert field in {e["field"] for e in response.json()["errors"]}


async def test_admin_queries_are_validated(client: httpx.AsyncClient) -> None:
    await sign_in(client, await make_user(Role.ADMIN))
    for params in (
        {"online": "maybe"},
        {"limit": "0"},
        {"kind": "toaster"},
        {"cursor": "%%%"},
        {"bogus": "1"},
    ):
        response = await client.get("/api/v1/admin/devices", params=params)
        assert response.status_code == 400, params
        assert response.json()["code"] == "validation_error"
    assert (await client.get("/api/v1/admin/devices/not-a-uuid")).status_code == 404
    assert (await client.get("/api/v1/admin/audit", params={"deviceId": "x"})).status_code == 400


async def test_failed_redemptions_are_rate_limited_per_ip(
    device_client: httpx.AsyncClient,
) -> None:
    for _ in range(20):
        response = await device_client.post(REGISTER, json=typed_body("ZZZZ-ZZZZ"))
        assert response.json()["code"] == "invalid_code"
    limited = await device_client.post(REGISTER, json=typed_body("ZZZZ-ZZZZ"))
    assert limited.status_code == 429
    assert limited.json()["code"] == "rate_limited"
    assert int(limited.headers["retry-after"]) > 0


async def test_fifty_parallel_redemptions_give_one_device(
    app: Starlette, client: httpx.AsyncClient, device_client: httpx.AsyncClient
) -> None:
    # The 49 losers are failed redemptions from one address: lift the per-IP budget so the
    # race, not the rate limit, decides every answer.
    runtime(app).settings = runtime(app).settings.model_copy(
        update={"redeem_failures_per_ip": "1000/minute"}
    )
    admin = await sign_in(client, await make_user(Role.ADMIN))
    minted = await mint_code(client, admin.csrf_token)
    phones = [PkcePair.generate() for _ in range(50)]

    responses = await asyncio.gather(
        *(
            device_client.post(REGISTER, json=scan_body(minted["pairingUri"], pkce=p))
            for p in phones
        )
    )

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] + [409] * 49, statuses
    assert {r.json()["code"] for r in responses if r.status_code == 409} == {"code_already_used"}
    assert await Device.all().count() == 1
    assert await AuditEvent.filter(action="device.registered").count() == 1
    assert await AuditEvent.filter(action="device.token.issued").count() == 1
