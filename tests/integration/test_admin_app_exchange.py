"""`POST /api/v1/admin/app/exchange-token` (DESIGN §6): one QR token, one connected app."""

from __future__ import annotations

import asyncio
import json
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from app import clock
from app.auth.jwt import ADMIN_AUDIENCE, ADMIN_TOKEN_TYPE
from app.edge.runtime import runtime
from app.models import AuditEvent, Device, DeviceToken, PairingSession
from tests.admin_phone import APP_DEVICES, IDENTIFIER, PHONE_IP, exchange, generate
from tests.factories import SignedInClient, sign_in
from tests.wire import assert_problem, unverified


@dataclass(frozen=True)
class Exchanged:
    qr_token: str
    answer: httpx.Response

    @property
    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = self.answer.json()
        return body


@pytest.fixture
async def exchanged(admin: SignedInClient, device_client: httpx.AsyncClient) -> Exchanged:
    """An Android phone scanned a fresh QR code and traded its token."""
    qr_token = (await generate(admin))["payload"]["token"]
    return Exchanged(qr_token, await exchange(device_client, qr_token, platform="android"))


async def test_exchange_answers_uncached_access_and_refresh_tokens(exchanged: Exchanged) -> None:
    assert exchanged.answer.status_code == 200, exchanged.answer.text
    assert exchanged.answer.headers["cache-control"].startswith("no-store")
    assert set(exchanged.body) == {"accessToken", "refreshToken", "expiresIn", "deviceId"}
    assert exchanged.body["expiresIn"] == 900
    assert exchanged.body["refreshToken"].startswith("pxr_")


async def test_the_access_token_is_an_ed25519_admin_jwt_for_fifteen_minutes(
    exchanged: Exchanged,
) -> None:
    header, claims = unverified(exchanged.body["accessToken"])

    assert header["typ"] == ADMIN_TOKEN_TYPE
    assert header["alg"] == "Ed25519"
    assert claims["aud"] == ADMIN_AUDIENCE
    assert claims["sub"] == exchanged.body["deviceId"]
    assert claims["exp"] - claims["iat"] == 900


async def test_exchange_registers_the_phone_as_an_admin_app_device_of_the_admin(
    admin: SignedInClient, exchanged: Exchanged
) -> None:
    device = await Device.get(id=exchanged.body["deviceId"])

    assert (device.kind.value, device.platform, device.label) == (
        "admin_app",
        "android",
        "Ada's iPhone",
    )
    assert (device.device_identifier, device.last_ip) == (IDENTIFIER, PHONE_IP)
    assert device.owner_id == admin.user.id


async def test_the_refresh_token_is_stored_only_as_a_hash(exchanged: Exchanged) -> None:
    stored = await DeviceToken.get(device_id=exchanged.body["deviceId"])

    assert exchanged.body["refreshToken"] not in (stored.token_hash + stored.secret_hash)


async def test_connecting_is_audited_for_the_admin_without_either_token(
    admin: SignedInClient, exchanged: Exchanged
) -> None:
    connected = await AuditEvent.get(action="app.device.connected")

    assert connected.actor_id == str(admin.user.id)
    assert connected.ip == PHONE_IP
    assert connected.metadata["deviceName"] == "Ada's iPhone"
    assert exchanged.body["refreshToken"] not in json.dumps(connected.metadata)
    assert exchanged.qr_token not in json.dumps(connected.metadata)


async def test_the_phone_gets_no_console_session_cookie(
    device_client: httpx.AsyncClient, exchanged: Exchanged
) -> None:
    assert "polaris_session" not in device_client.cookies


# -- single use, expiry, sign-out ----------------------------------------------------------


@pytest.fixture
async def used_qr_token(admin: SignedInClient, device_client: httpx.AsyncClient) -> str:
    qr_token = str((await generate(admin))["payload"]["token"])
    assert (await exchange(device_client, qr_token)).status_code == 200
    return qr_token


async def test_a_used_qr_token_is_code_already_used(
    device_client: httpx.AsyncClient, used_qr_token: str
) -> None:
    again = await exchange(device_client, used_qr_token, deviceName="Thief's phone")

    assert_problem(again, 409, "code_already_used")
    assert await Device.filter(kind="admin_app").count() == 1


async def test_a_second_use_of_a_qr_token_is_audited_without_the_token(
    device_client: httpx.AsyncClient, used_qr_token: str
) -> None:
    await exchange(device_client, used_qr_token, deviceName="Thief's phone")

    failed = await AuditEvent.get(action="app.exchange_failed")
    assert failed.metadata["reason"] == "code_already_used"
    assert used_qr_token not in json.dumps(failed.metadata)


async def test_an_expired_qr_token_is_code_expired(
    admin: SignedInClient, device_client: httpx.AsyncClient
) -> None:
    start = clock.now()
    with clock.frozen(start):
        early = await generate(admin)
        late = await generate(admin)
    with clock.frozen(start + timedelta(seconds=299.9)):
        ok = await exchange(device_client, early["payload"]["token"])
    with clock.frozen(start + timedelta(seconds=300.1)):
        expired = await exchange(device_client, late["payload"]["token"])

    assert ok.status_code == 200
    assert_problem(expired, 410, "code_expired")
    assert await Device.filter(kind="admin_app").count() == 1


@pytest.fixture
async def signed_out_with_an_unused_qr_token(
    admin: SignedInClient, device_client: httpx.AsyncClient, used_qr_token: str
) -> str:
    """The admin connected one phone from two QR codes shown, then signed out."""
    unused = (await generate(admin))["payload"]["token"]
    out = await admin.client.post("/api/v1/auth/logout", headers=admin.write_headers())
    assert out.status_code == 204
    return str(unused)


async def test_signing_out_kills_the_sessions_unused_qr_tokens(
    device_client: httpx.AsyncClient, signed_out_with_an_unused_qr_token: str
) -> None:
    refused = await exchange(device_client, signed_out_with_an_unused_qr_token)

    assert_problem(refused, 410, "code_expired")
    states = await PairingSession.filter(kind="admin_app").values_list("state", flat=True)
    assert sorted(map(str, states)) == ["cancelled", "redeemed"]


async def test_signing_out_audits_the_unused_qr_token_as_cancelled(
    signed_out_with_an_unused_qr_token: str,
) -> None:
    cancelled = await AuditEvent.get(action="app.qr.cancelled")

    assert cancelled.metadata["reason"] == "signed_out"


async def test_signing_out_of_the_console_leaves_the_connected_app_connected(
    admin: SignedInClient, signed_out_with_an_unused_qr_token: str
) -> None:
    assert (await admin.client.get(APP_DEVICES)).status_code == 401
    assert await Device.filter(kind="admin_app", state="active").count() == 1


async def test_a_qr_token_dies_with_its_console_session_however_it_ended(
    admin: SignedInClient, device_client: httpx.AsyncClient
) -> None:
    qr = await generate(admin)
    # Signing in again from the same browser ends the old session without a sign-out.
    await sign_in(admin.client, admin.user)

    refused = await exchange(device_client, qr["payload"]["token"])

    assert_problem(refused, 410, "code_expired")
    assert "console session" in refused.json()["detail"]
    assert await Device.filter(kind="admin_app").count() == 0


async def test_twenty_concurrent_exchanges_of_one_token_give_one_device(
    app: Starlette, admin: SignedInClient, device_client: httpx.AsyncClient
) -> None:
    # The 19 losers are failed exchanges from one address: lift the per-IP budget so the
    # race, not the rate limit, decides every answer.
    runtime(app).settings = runtime(app).settings.model_copy(
        update={"redeem_failures_per_ip": "1000/minute"}
    )
    qr = await generate(admin)

    responses = await asyncio.gather(
        *(
            exchange(device_client, qr["payload"]["token"], deviceName=f"Phone {n}")
            for n in range(20)
        )
    )

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] + [409] * 19, statuses
    assert {r.json()["code"] for r in responses if r.status_code == 409} == {"code_already_used"}
    assert await Device.filter(kind="admin_app").count() == 1
    assert await DeviceToken.all().count() == 1
    assert await AuditEvent.filter(action="app.device.connected").count() == 1


@pytest.fixture
async def three_bad_guesses(
    app: Starlette, admin: SignedInClient, device_client: httpx.AsyncClient
) -> str:
    """With a budget of three failures a minute, the phone's address has spent it on guesses.

    Returns a genuine QR token minted before the guessing.
    """
    runtime(app).settings = runtime(app).settings.model_copy(
        update={"redeem_failures_per_ip": "3/minute"}
    )
    qr_token = (await generate(admin))["payload"]["token"]
    for _ in range(3):
        guess = await exchange(device_client, secrets.token_urlsafe(32))
        assert_problem(guess, 400, "invalid_code")
    return str(qr_token)


async def test_failed_exchanges_are_rate_limited_per_address(
    device_client: httpx.AsyncClient, three_bad_guesses: str
) -> None:
    limited = await exchange(device_client, three_bad_guesses)

    assert_problem(limited, 429, "rate_limited")
    assert int(limited.headers["retry-after"]) > 0


async def test_another_address_is_not_held_back_by_one_addresses_failures(
    admin: SignedInClient, three_bad_guesses: str
) -> None:
    assert (await exchange(admin.client, three_bad_guesses)).status_code == 200
