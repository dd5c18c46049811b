"""The admin mobile app (DESIGN §6), driven over HTTP as the console and the phone drive it."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import secrets
import shutil
import subprocess
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import OctKey, OKPKey
from starlette.applications import Starlette

from app import clock
from app.auth.jwt import ADMIN_AUDIENCE, ADMIN_TOKEN_TYPE, DEVICE_AUDIENCE, DEVICE_TOKEN_TYPE
from app.models import AuditEvent, Device, DeviceToken, PairingSession, User
from app.models.user import Role
from app.services import app_onboarding
from app.settings import Settings
from tests.backends import IN_CI
from tests.factories import SignedInClient, make_user, sign_in
from tests.pairing_client import (
    REGISTER,
    FakePhone,
    PairedDevice,
    access_token,
    bearer,
    heartbeat,
    pair_device,
)

GENERATE = "/api/v1/admin/app/generate-qr"
EXCHANGE = "/api/v1/admin/app/exchange-token"
REFRESH = "/api/v1/admin/app/refresh"
APP_DEVICES = "/api/v1/admin/app/devices"
FLEET = "/api/v1/admin/devices"
MINT = "/api/v1/admin/pairing-sessions"
PHONE_IP = "198.51.100.23"  # the device_client fixture's address
IDENTIFIER = "6F1C2A9E-4B7D-4E0A-9C61-2D3B5A7F8E10"


def app_body(token: str, **overrides: Any) -> dict[str, Any]:
    body = {
        "token": token,
        "deviceName": "Ada's iPhone",
        "platform": "ios",
        "deviceIdentifier": IDENTIFIER,
        **overrides,
    }
    return {k: v for k, v in body.items() if v is not _DROP}


_DROP = object()


@dataclass(frozen=True)
class Connected:
    device_id: str
    access_token: str
    refresh_token: str


def assert_problem(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == code


async def generate(admin: SignedInClient) -> dict[str, Any]:
    response = await admin.client.post(GENERATE, headers=admin.write_headers())
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def exchange(phone: httpx.AsyncClient, token: str, **overrides: Any) -> httpx.Response:
    return await phone.post(EXCHANGE, json=app_body(token, **overrides))


async def connect(admin: SignedInClient, phone: httpx.AsyncClient, **overrides: Any) -> Connected:
    qr = await generate(admin)
    response = await exchange(phone, qr["payload"]["token"], **overrides)
    assert response.status_code == 200, response.text
    body = response.json()
    return Connected(body["deviceId"], body["accessToken"], body["refreshToken"])


async def refresh(phone: httpx.AsyncClient, refresh_token: str) -> httpx.Response:
    return await phone.post(REFRESH, json={"refreshToken": refresh_token})


def unverified(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    header, claims, _ = token.split(".")
    return _unb64(header), _unb64(claims)


def _unb64(segment: str) -> dict[str, Any]:
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))  # type: ignore[no-any-return]


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


async def cancel_from_console(admin: SignedInClient) -> str:
    """Show a QR code on the Mobile app page, then press its Cancel button."""
    headers = {**admin.write_headers(), "HX-Request": "true"}
    card = (await admin.client.post("/admin/mobile-app/qr", headers=headers)).text
    cancel_url = re.search(r'hx-post="(/admin/mobile-app/qr/[0-9a-f-]+/cancel)"', card)
    assert cancel_url is not None
    response = await admin.client.post(cancel_url.group(1), headers=headers)
    assert response.status_code == 200
    return cancel_url.group(1).split("/")[-2]


@pytest.fixture
async def admin(client: httpx.AsyncClient) -> SignedInClient:
    return await sign_in(client, await make_user(Role.ADMIN))


# -- the QR code ---------------------------------------------------------------------------


async def test_generate_qr_hands_out_the_token_once_and_stores_only_its_hash(
    admin: SignedInClient,
) -> None:
    before = clock.now()
    qr = await generate(admin)

    assert set(qr) == {"qrSvg", "payload", "expiresAtIso"}
    payload = qr["payload"]
    assert payload == {
        "token": payload["token"],
        "apiBaseUrl": "http://testserver/api/v1",
        "logoUrl": None,
        "siteName": "Polaris",
    }
    assert len(base64.urlsafe_b64decode(payload["token"] + "=")) == 32  # 256 bits
    assert qr["qrSvg"].startswith("<svg")
    assert "Admin app QR code" in qr["qrSvg"]
    expires_at = datetime.fromisoformat(qr["expiresAtIso"])
    assert timedelta(seconds=299) <= expires_at - before <= timedelta(seconds=301)

    session = await PairingSession.get(kind="admin_app")
    assert session.state == "minted"
    assert session.console_session_id is not None  # type: ignore[attr-defined]
    assert payload["token"] not in session.code_hash
    generated = await AuditEvent.get(action="app.qr.generated")
    assert generated.actor_id == str(admin.user.id)
    assert payload["token"] not in json.dumps(generated.metadata)


def _decode_qr(svg: str, workdir: Path) -> str:
    """Render the SVG exactly as served, then read it with zbar, as a phone camera would."""
    missing = [tool for tool in ("rsvg-convert", "zbarimg") if shutil.which(tool) is None]
    if missing:
        if IN_CI:
            pytest.fail(f"CI=true but {', '.join(missing)} missing (scripts/bootstrap)")
        pytest.skip(f"{', '.join(missing)} not installed (librsvg2-bin, zbar-tools)")
    (workdir / "qr.svg").write_text(svg)
    subprocess.run(
        ["rsvg-convert", "--zoom", "4", "--background-color", "white", "-o", "qr.png", "qr.svg"],
        cwd=workdir,
        check=True,
        capture_output=True,
    )
    decoded = subprocess.run(
        ["zbarimg", "--raw", "-q", "qr.png"], cwd=workdir, capture_output=True, check=True
    )
    return decoded.stdout.decode().rstrip("\n")


async def test_qr_decodes_to_the_documented_compact_json_payload(
    app: Starlette, admin: SignedInClient, tmp_path: Path
) -> None:
    app.state.settings = app.state.settings.model_copy(
        update={"site_logo_url": "/static/brand/logo.png", "site_name": "Acme Logistics"}
    )
    qr = await generate(admin)

    decoded = _decode_qr(qr["qrSvg"], tmp_path)

    assert decoded == json.dumps(qr["payload"], separators=(",", ":"))
    assert json.loads(decoded) == {
        "token": qr["payload"]["token"],
        "apiBaseUrl": "http://testserver/api/v1",
        "logoUrl": "http://testserver/static/brand/logo.png",
        "siteName": "Acme Logistics",
    }


async def test_a_new_qr_code_leaves_an_older_unexpired_one_valid(
    admin: SignedInClient, device_client: httpx.AsyncClient
) -> None:
    first = await generate(admin)
    second = await generate(admin)

    assert (await exchange(device_client, first["payload"]["token"])).status_code == 200
    assert (await exchange(device_client, second["payload"]["token"])).status_code == 200
    assert await Device.filter(kind="admin_app").count() == 2


async def test_generating_a_qr_code_takes_an_admin_at_the_console(
    client: httpx.AsyncClient, device_client: httpx.AsyncClient
) -> None:
    anonymous = await client.post(GENERATE)
    assert_problem(anonymous, 401, "not_authenticated")

    operator = await sign_in(client, await make_user(Role.OPERATOR))
    assert_problem(await client.post(GENERATE, headers=operator.write_headers()), 403, "forbidden")

    admin = await sign_in(client, await make_user(Role.ADMIN))
    assert_problem(await client.post(GENERATE), 403, "forbidden")  # no CSRF token
    # The app itself cannot mint codes that connect more apps.
    phone = await connect(admin, device_client)
    from_app = await device_client.post(GENERATE, headers=bearer(phone.access_token))
    assert_problem(from_app, 403, "forbidden")
    assert await PairingSession.filter(kind="admin_app").count() == 1


# -- the whole flow ------------------------------------------------------------------------


async def test_generate_exchange_use_refresh_revoke(
    admin: SignedInClient, device_client: httpx.AsyncClient
) -> None:
    qr = await generate(admin)
    exchanged = await exchange(device_client, qr["payload"]["token"], platform="android")

    assert exchanged.status_code == 200, exchanged.text
    assert exchanged.headers["cache-control"].startswith("no-store")
    body = exchanged.json()
    assert set(body) == {"accessToken", "refreshToken", "expiresIn", "deviceId"}
    assert body["expiresIn"] == 900
    assert body["refreshToken"].startswith("pxr_")
    header, claims = unverified(body["accessToken"])
    assert header["typ"] == ADMIN_TOKEN_TYPE
    assert header["alg"] == "Ed25519"
    assert claims["aud"] == ADMIN_AUDIENCE
    assert claims["sub"] == body["deviceId"]
    assert claims["exp"] - claims["iat"] == 900
    device = await Device.get(id=body["deviceId"])
    assert (device.kind.value, device.platform, device.label) == (
        "admin_app",
        "android",
        "Ada's iPhone",
    )
    assert (device.device_identifier, device.last_ip) == (IDENTIFIER, PHONE_IP)
    assert device.owner_id == admin.user.id  # type: ignore[attr-defined]
    stored = await DeviceToken.get(device_id=device.id)
    assert body["refreshToken"] not in (stored.token_hash + stored.secret_hash)
    connected = await AuditEvent.get(action="app.device.connected")
    assert connected.actor_id == str(admin.user.id)
    assert connected.ip == PHONE_IP
    assert connected.metadata["deviceName"] == "Ada's iPhone"
    assert body["refreshToken"] not in json.dumps(connected.metadata)
    assert qr["payload"]["token"] not in json.dumps(connected.metadata)

    # The phone has no cookie and no CSRF token: the Bearer JWT alone does what the console does.
    phone = device_client
    assert "polaris_session" not in phone.cookies
    access = bearer(body["accessToken"])
    fleet = await phone.get(FLEET, headers=access)
    assert fleet.status_code == 200, fleet.text
    assert [d["deviceId"] for d in fleet.json()["items"]] == [body["deviceId"]]
    detail = await phone.get(f"{FLEET}/{body['deviceId']}", headers=access)
    assert detail.json()["kind"] == "admin_app"
    assert (await phone.get("/api/v1/admin/audit", headers=access)).status_code == 200
    minted = await phone.post(MINT, headers=access)
    assert minted.status_code == 201, minted.text
    assert (await phone.get("/api/v1/auth/me", headers=access)).json()["user"]["role"] == "admin"
    listed = (await phone.get(APP_DEVICES, headers=access)).json()["items"]
    assert [(d["deviceId"], d["thisDevice"], d["ip"]) for d in listed] == [
        (body["deviceId"], True, PHONE_IP)
    ]

    refreshed = await refresh(phone, body["refreshToken"])
    assert refreshed.status_code == 200, refreshed.text
    assert refreshed.headers["cache-control"].startswith("no-store")
    renewed = refreshed.json()
    assert renewed["deviceId"] == body["deviceId"]
    assert renewed["refreshToken"] != body["refreshToken"]
    # Refreshing ends the access token minted from the previous refresh token.
    assert_problem(await phone.get(FLEET, headers=access), 401, "token_revoked")
    access = bearer(renewed["accessToken"])
    assert (await phone.get(FLEET, headers=access)).status_code == 200

    revoked = await admin.client.delete(
        f"{APP_DEVICES}/{body['deviceId']}", headers=admin.write_headers()
    )
    assert revoked.status_code == 204

    assert_problem(await phone.get(FLEET, headers=access), 401, "token_revoked")
    assert_problem(await refresh(phone, renewed["refreshToken"]), 401, "token_revoked")
    assert (await admin.client.get(APP_DEVICES)).json()["items"] == []
    event = await AuditEvent.get(action="app.device.revoked")
    assert event.actor_id == str(admin.user.id)
    assert event.metadata["deviceId"] == body["deviceId"]
    assert (await Device.get(id=body["deviceId"])).state == "deregistered"


async def test_revocation_holds_even_if_the_presence_store_forgot_it(
    app: Starlette, admin: SignedInClient, device_client: httpx.AsyncClient
) -> None:
    phone = await connect(admin, device_client)
    await admin.client.delete(f"{APP_DEVICES}/{phone.device_id}", headers=admin.write_headers())
    app.state.presence._revoked.clear()  # the database is the truth, not the cache

    response = await device_client.get(FLEET, headers=bearer(phone.access_token))

    assert_problem(response, 401, "token_revoked")


async def test_the_app_signs_itself_out_by_revoking_its_own_device(
    admin: SignedInClient, device_client: httpx.AsyncClient
) -> None:
    phone = await connect(admin, device_client)
    access = bearer(phone.access_token)

    gone = await device_client.delete(f"{APP_DEVICES}/{phone.device_id}", headers=access)

    assert gone.status_code == 204
    assert_problem(await device_client.get(APP_DEVICES, headers=access), 401, "token_revoked")


async def test_last_active_and_ip_are_tracked_without_a_write_per_request(
    admin: SignedInClient, device_client: httpx.AsyncClient
) -> None:
    phone = await connect(admin, device_client)
    connected_at = (await Device.get(id=phone.device_id)).last_seen_at
    assert connected_at is not None

    clock.advance(timedelta(minutes=5))
    assert (await device_client.get(FLEET, headers=bearer(phone.access_token))).status_code == 200

    assert (await Device.get(id=phone.device_id)).last_seen_at == connected_at
    listed = (await admin.client.get(APP_DEVICES)).json()["items"][0]
    last_active = datetime.fromisoformat(listed["lastActiveAtIso"])
    assert last_active - connected_at >= timedelta(minutes=5)
    assert listed["connectedAtIso"] < listed["lastActiveAtIso"]
    assert listed["ip"] == PHONE_IP


async def test_the_app_runs_the_scanner_runbook_with_its_bearer_token_alone(
    admin: SignedInClient, device_client: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    connected = await connect(admin, device_client)
    # A fresh client: no session cookie, no CSRF token, only the app's JWT.
    async with httpx.AsyncClient(
        transport=client._transport, base_url="http://testserver"
    ) as app_client:
        access = bearer(connected.access_token)
        minted = await app_client.post(MINT, headers=access)
        assert minted.status_code == 201, minted.text
        session_url = f"{MINT}/{minted.json()['pairingSessionId']}"
        scanner = FakePhone()
        pending = await device_client.post(REGISTER, json=scanner.typed_body(minted.json()["code"]))
        assert pending.status_code == 202, pending.text
        shown = (await app_client.get(session_url, headers=access)).json()
        assert shown["pendingDevice"]["checkCode"] == pending.json()["checkCode"]

        approved = await app_client.post(
            f"{session_url}/approve", json={"capabilities": ["scan"]}, headers=access
        )
        assert approved.status_code == 200, approved.text
        clock.advance(timedelta(seconds=6))
        collected = await scanner.poll(device_client, pending.json()["pairingId"])
        assert collected.status_code == 201, collected.text
        body = collected.json()
        paired = PairedDevice(body["deviceId"], body["deviceToken"], body["deviceSecret"])
        scanner_jwt = await access_token(device_client, paired)

        detail = (await app_client.get(f"{FLEET}/{paired.device_id}", headers=access)).json()
        token_id = detail["tokens"][0]["tokenId"]
        revoked = await app_client.post(
            f"{FLEET}/{paired.device_id}/tokens/{token_id}/revoke", headers=access
        )
        assert revoked.status_code == 200, revoked.text
        assert_problem(await heartbeat(device_client, scanner_jwt), 401, "token_revoked")
        deregistered = await app_client.delete(f"{FLEET}/{paired.device_id}", headers=access)
        assert deregistered.status_code in (200, 204), deregistered.text

        actors = await AuditEvent.filter(
            action__in=["pairing.approved", "device.token.revoked", "device.deregistered"]
        ).values_list("action", "actor_id")
        assert {action for action, _ in actors} >= {"device.token.revoked", "device.deregistered"}
        assert {actor for _, actor in actors} == {str(admin.user.id)}


async def test_the_jwt_carries_the_role_the_admin_has_now(
    admin: SignedInClient, device_client: httpx.AsyncClient
) -> None:
    phone = await connect(admin, device_client)
    access = bearer(phone.access_token)

    await User.filter(id=admin.user.id).update(role=Role.OPERATOR)
    assert (await device_client.get(FLEET, headers=access)).status_code == 200
    assert_problem(await device_client.post(MINT, headers=access), 403, "forbidden")

    await User.filter(id=admin.user.id).update(is_active=False)
    assert_problem(await device_client.get(FLEET, headers=access), 401, "not_authenticated")


async def test_admins_see_and_revoke_only_their_own_app_devices(
    admin: SignedInClient, app: Starlette, device_client: httpx.AsyncClient
) -> None:
    mine = await connect(admin, device_client)
    transport = httpx.ASGITransport(app=app, client=("203.0.113.99", 50001))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as browser:
        other = await sign_in(browser, await make_user(Role.ADMIN, email="other@example.com"))
        assert (await browser.get(APP_DEVICES)).json()["items"] == []
        refused = await browser.delete(
            f"{APP_DEVICES}/{mine.device_id}", headers=other.write_headers()
        )
        assert_problem(refused, 404, "not_found")
    listed = (await admin.client.get(APP_DEVICES)).json()["items"]
    assert [d["deviceId"] for d in listed] == [mine.device_id]
    unknown = await admin.client.delete(
        f"{APP_DEVICES}/{uuid.uuid4()}", headers=admin.write_headers()
    )
    assert_problem(unknown, 404, "not_found")


# -- single use, expiry, sign-out ----------------------------------------------------------


async def test_a_used_qr_token_is_code_already_used(
    admin: SignedInClient, device_client: httpx.AsyncClient
) -> None:
    qr = await generate(admin)
    assert (await exchange(device_client, qr["payload"]["token"])).status_code == 200

    again = await exchange(device_client, qr["payload"]["token"], deviceName="Thief's phone")

    assert_problem(again, 409, "code_already_used")
    assert await Device.filter(kind="admin_app").count() == 1
    failed = await AuditEvent.get(action="app.exchange_failed")
    assert failed.metadata["reason"] == "code_already_used"
    assert qr["payload"]["token"] not in json.dumps(failed.metadata)


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


async def test_signing_out_kills_the_sessions_unused_qr_tokens(
    admin: SignedInClient, device_client: httpx.AsyncClient
) -> None:
    used = await generate(admin)
    unused = await generate(admin)
    assert (await exchange(device_client, used["payload"]["token"])).status_code == 200

    out = await admin.client.post("/api/v1/auth/logout", headers=admin.write_headers())
    assert out.status_code == 204

    refused = await exchange(device_client, unused["payload"]["token"])
    assert_problem(refused, 410, "code_expired")
    states = await PairingSession.filter(kind="admin_app").values_list("state", flat=True)
    assert sorted(states) == ["cancelled", "redeemed"]
    cancelled = await AuditEvent.get(action="app.qr.cancelled")
    assert cancelled.metadata["reason"] == "signed_out"
    # Signing out of the console does not sign the already connected app out.
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
    app.state.settings = app.state.settings.model_copy(
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


async def test_failed_exchanges_are_rate_limited_per_address(
    app: Starlette, admin: SignedInClient, device_client: httpx.AsyncClient
) -> None:
    app.state.settings = app.state.settings.model_copy(
        update={"redeem_failures_per_ip": "3/minute"}
    )
    qr = await generate(admin)
    for _ in range(3):
        guess = await exchange(device_client, secrets.token_urlsafe(32))
        assert_problem(guess, 400, "invalid_code")

    limited = await exchange(device_client, qr["payload"]["token"])

    assert_problem(limited, 429, "rate_limited")
    assert int(limited.headers["retry-after"]) > 0
    # Another address is not held back by this one's failures.
    assert (await exchange(admin.client, qr["payload"]["token"])).status_code == 200


# -- refresh tokens ------------------------------------------------------------------------


async def test_a_replayed_refresh_token_revokes_the_device(
    admin: SignedInClient, device_client: httpx.AsyncClient
) -> None:
    phone = await connect(admin, device_client)
    first = await refresh(device_client, phone.refresh_token)
    assert first.status_code == 200
    current = first.json()

    clock.advance(timedelta(seconds=11))
    replay = await refresh(device_client, phone.refresh_token)

    assert_problem(replay, 401, "token_revoked")
    assert_problem(await refresh(device_client, current["refreshToken"]), 401, "token_revoked")
    assert_problem(
        await device_client.get(FLEET, headers=bearer(current["accessToken"])),
        401,
        "token_revoked",
    )
    device = await Device.get(id=phone.device_id)
    assert device.state == "deregistered"
    event = await AuditEvent.get(action="app.refresh.reuse_detected")
    assert event.target_id == phone.device_id
    assert event.actor_type == "device"
    assert event.metadata["revokedTokenIds"] == [
        str((await DeviceToken.get(replaced_by_id=None, device_id=device.id)).id)
    ]


async def test_a_refresh_token_seen_right_after_its_rotation_is_a_conflict_not_a_replay(
    admin: SignedInClient, device_client: httpx.AsyncClient
) -> None:
    phone = await connect(admin, device_client)
    winner = await refresh(device_client, phone.refresh_token)
    assert winner.status_code == 200

    racing = await refresh(device_client, phone.refresh_token)

    assert_problem(racing, 409, "conflict")
    assert (await Device.get(id=phone.device_id)).state == "active"
    renewed = await refresh(device_client, winner.json()["refreshToken"])
    assert renewed.status_code == 200


async def test_concurrent_refreshes_of_one_token_have_one_winner(
    admin: SignedInClient, device_client: httpx.AsyncClient
) -> None:
    phone = await connect(admin, device_client)

    responses = await asyncio.gather(
        *(refresh(device_client, phone.refresh_token) for _ in range(5))
    )

    assert sorted(r.status_code for r in responses) == [200] + [409] * 4
    assert await DeviceToken.filter(device_id=phone.device_id, state="active").count() == 1
    assert (await Device.get(id=phone.device_id)).state == "active"


async def test_refresh_tokens_expire_when_unused(
    app: Starlette, admin: SignedInClient, device_client: httpx.AsyncClient
) -> None:
    settings: Settings = app.state.settings
    phone = await connect(admin, device_client)
    clock.advance(timedelta(days=settings.app_refresh_token_ttl_days, seconds=1))

    assert_problem(await refresh(device_client, phone.refresh_token), 401, "token_expired")
    assert_problem(
        await device_client.get(FLEET, headers=bearer(phone.access_token)), 401, "token_expired"
    )


async def test_each_refresh_renews_the_refresh_tokens_lifetime(
    app: Starlette, admin: SignedInClient, device_client: httpx.AsyncClient
) -> None:
    settings: Settings = app.state.settings
    phone = await connect(admin, device_client)
    token = phone.refresh_token
    for _ in range(2):
        clock.advance(timedelta(days=settings.app_refresh_token_ttl_days - 1))
        response = await refresh(device_client, token)
        assert response.status_code == 200, response.text
        token = response.json()["refreshToken"]


# -- token types are never interchangeable ------------------------------------------------


async def test_device_and_admin_app_tokens_are_not_interchangeable(
    admin: SignedInClient, device_client: httpx.AsyncClient
) -> None:
    scanner = await pair_device(admin.client, device_client, admin.csrf_token)
    device_jwt = await access_token(device_client, scanner)
    phone = await connect(admin, device_client)

    # A scanner's access token on the admin API.
    assert_problem(
        await device_client.get(FLEET, headers=bearer(device_jwt)), 401, "invalid_credentials"
    )
    assert_problem(
        await device_client.post(MINT, headers=bearer(device_jwt)), 401, "invalid_credentials"
    )
    # The admin app's access token on the device runtime API.
    assert_problem(await heartbeat(device_client, phone.access_token), 401, "invalid_credentials")
    # Long-lived credentials: a refresh token is no device pair, and a device pair no refresh token.
    as_pair = {"deviceToken": phone.refresh_token, "deviceSecret": phone.refresh_token}
    assert_problem(
        await device_client.post("/api/devices/token", json=as_pair), 401, "invalid_credentials"
    )
    glued = f"{scanner.device_token}.{scanner.device_secret}"
    for attempt in (scanner.device_token, scanner.device_secret, glued):
        assert_problem(await refresh(device_client, attempt), 401, "invalid_credentials")
    # Both still work where they belong.
    assert (await heartbeat(device_client, device_jwt)).status_code == 200
    assert (await device_client.get(FLEET, headers=bearer(phone.access_token))).status_code == 200


def _signed_elsewhere(claims: dict[str, Any], header: dict[str, Any], _: Starlette) -> str:
    own = OKPKey.generate_key("Ed25519", parameters={"kid": header["kid"]})
    return jwt.encode(header, claims, own, algorithms=["Ed25519"])


FORGED: list[tuple[str, Callable[[dict[str, Any], dict[str, Any], Starlette], str]]] = [
    ("not-a-jwt", lambda c, h, a: "not-a-jwt"),
    ("alg-none", lambda c, h, a: f"{_b64({**h, 'alg': 'none'})}.{_b64(c)}."),
    (
        "hs256",
        lambda c, h, a: jwt.encode(
            {**h, "alg": "HS256"}, c, OctKey.generate_key(256), algorithms=["HS256"]
        ),
    ),
    ("own-key-under-the-real-kid", _signed_elsewhere),
    (
        "typ-device-jwt",
        lambda c, h, a: a.state.keyring.sign(
            token_type=DEVICE_TOKEN_TYPE,
            audience=ADMIN_AUDIENCE,
            subject=c["sub"],
            token_id=c["tid"],
            scope=(),
            issued_at=c["iat"],
            lifetime=900,
        )[0],
    ),
    (
        "device-audience",
        lambda c, h, a: a.state.keyring.sign(
            token_type=ADMIN_TOKEN_TYPE,
            audience=DEVICE_AUDIENCE,
            subject=c["sub"],
            token_id=c["tid"],
            scope=(),
            issued_at=c["iat"],
            lifetime=900,
        )[0],
    ),
]


@pytest.mark.parametrize(("name", "forge"), FORGED, ids=[name for name, _ in FORGED])
async def test_the_admin_api_refuses_forged_admin_tokens(
    app: Starlette,
    admin: SignedInClient,
    device_client: httpx.AsyncClient,
    name: str,
    forge: Callable[[dict[str, Any], dict[str, Any], Starlette], str],
) -> None:
    phone = await connect(admin, device_client)
    header, claims = unverified(phone.access_token)

    response = await device_client.get(FLEET, headers=bearer(forge(claims, header, app)))

    assert_problem(response, 401, "invalid_credentials")
    assert (await device_client.get(FLEET, headers=bearer(phone.access_token))).status_code == 200


async def test_an_expired_admin_token_is_token_expired(
    admin: SignedInClient, device_client: httpx.AsyncClient
) -> None:
    phone = await connect(admin, device_client)
    clock.advance(timedelta(minutes=15))

    response = await device_client.get(FLEET, headers=bearer(phone.access_token))

    assert_problem(response, 401, "token_expired")


# -- every bad input has its problem code -------------------------------------------------

_TOKEN = "A" * 43  # well-formed, never issued

BAD_INPUTS: list[tuple[str, str, str, dict[str, Any], int, str]] = [
    ("exchange-unknown-token", "POST", EXCHANGE, {"json": app_body(_TOKEN)}, 400, "invalid_code"),
    (
        "exchange-short-token",
        "POST",
        EXCHANGE,
        {"json": app_body("A" * 42)},
        400,
        "validation_error",
    ),
    (
        "exchange-token-bad-characters",
        "POST",
        EXCHANGE,
        {"json": app_body("A" * 42 + "=")},
        400,
        "validation_error",
    ),
    (
        "exchange-token-not-a-string",
        "POST",
        EXCHANGE,
        {"json": app_body(12345)},  # type: ignore[arg-type]
        400,
        "validation_error",
    ),
    (
        "exchange-missing-token",
        "POST",
        EXCHANGE,
        {"json": app_body(_DROP)},  # type: ignore[arg-type]
        400,
        "validation_error",
    ),
    (
        "exchange-blank-device-name",
        "POST",
        EXCHANGE,
        {"json": app_body(_TOKEN, deviceName="   ")},
        400,
        "validation_error",
    ),
    (
        "exchange-device-name-too-long",
        "POST",
        EXCHANGE,
        {"json": app_body(_TOKEN, deviceName="x" * 121)},
        400,
        "validation_error",
    ),
    (
        "exchange-missing-device-name",
        "POST",
        EXCHANGE,
        {"json": app_body(_TOKEN, deviceName=_DROP)},
        400,
        "validation_error",
    ),
    (
        "exchange-platform-macos",
        "POST",
        EXCHANGE,
        {"json": app_body(_TOKEN, platform="macos")},
        400,
        "validation_error",
    ),
    (
        "exchange-platform-upper-case",
        "POST",
        EXCHANGE,
        {"json": app_body(_TOKEN, platform="IOS")},
        400,
        "validation_error",
    ),
    (
        "exchange-missing-platform",
        "POST",
        EXCHANGE,
        {"json": app_body(_TOKEN, platform=_DROP)},
        400,
        "validation_error",
    ),
    (
        "exchange-blank-device-identifier",
        "POST",
        EXCHANGE,
        {"json": app_body(_TOKEN, deviceIdentifier="")},
        400,
        "validation_error",
    ),
    (
        "exchange-device-identifier-too-long",
        "POST",
        EXCHANGE,
        {"json": app_body(_TOKEN, deviceIdentifier="a" * 129)},
        400,
        "validation_error",
    ),
    (
        "exchange-device-identifier-markup",
        "POST",
        EXCHANGE,
        {"json": app_body(_TOKEN, deviceIdentifier="<script>")},
        400,
        "validation_error",
    ),
    (
        "exchange-missing-device-identifier",
        "POST",
        EXCHANGE,
        {"json": app_body(_TOKEN, deviceIdentifier=_DROP)},
        400,
        "validation_error",
    ),
    (
        "exchange-unknown-field",
        "POST",
        EXCHANGE,
        {"json": app_body(_TOKEN, role="admin")},
        400,
        "validation_error",
    ),
    (
        "exchange-owner-mass-assignment",
        "POST",
        EXCHANGE,
        {"json": app_body(_TOKEN, ownerUserId=str(uuid.uuid4()))},
        400,
        "validation_error",
    ),
    ("exchange-json-array", "POST", EXCHANGE, {"json": [_TOKEN]}, 400, "validation_error"),
    (
        "exchange-not-json",
        "POST",
        EXCHANGE,
        {"content": b"{token", "headers": {"content-type": "application/json"}},
        400,
        "validation_error",
    ),
    (
        "exchange-form-encoded",
        "POST",
        EXCHANGE,
        {"data": {"token": _TOKEN}},
        415,
        "unsupported_media_type",
    ),
    (
        "exchange-too-large",
        "POST",
        EXCHANGE,
        {"json": app_body(_TOKEN, deviceName="x" * 20_000)},
        413,
        "payload_too_large",
    ),
    (
        "refresh-unknown-token",
        "POST",
        REFRESH,
        {"json": {"refreshToken": f"pxr_{'0' * 16}_{'A' * 43}"}},
        401,
        "invalid_credentials",
    ),
    (
        "refresh-malformed-token",
        "POST",
        REFRESH,
        {"json": {"refreshToken": "not-a-refresh-token"}},
        401,
        "invalid_credentials",
    ),
    (
        "refresh-empty-token",
        "POST",
        REFRESH,
        {"json": {"refreshToken": ""}},
        400,
        "validation_error",
    ),
    (
        "refresh-token-too-long",
        "POST",
        REFRESH,
        {"json": {"refreshToken": "pxr_" + "a" * 300}},
        400,
        "validation_error",
    ),
    ("refresh-missing-token", "POST", REFRESH, {"json": {}}, 400, "validation_error"),
    (
        "refresh-unknown-field",
        "POST",
        REFRESH,
        {"json": {"refreshToken": "x", "deviceId": "y"}},
        400,
        "validation_error",
    ),
    (
        "refresh-text-plain",
        "POST",
        REFRESH,
        {"content": b"x", "headers": {"content-type": "text/plain"}},
        415,
        "unsupported_media_type",
    ),
    ("devices-anonymous", "GET", APP_DEVICES, {}, 401, "not_authenticated"),
    (
        "devices-empty-bearer",
        "GET",
        APP_DEVICES,
        {"headers": {"Authorization": "Bearer "}},
        401,
        "invalid_credentials",
    ),
    (
        "devices-garbage-bearer",
        "GET",
        APP_DEVICES,
        {"headers": {"Authorization": "Bearer abc.def.ghi"}},
        401,
        "invalid_credentials",
    ),
    (
        "revoke-anonymous",
        "DELETE",
        f"{APP_DEVICES}/{uuid.uuid4()}",
        {},
        401,
        "not_authenticated",
    ),
    ("revoke-not-a-uuid", "DELETE", f"{APP_DEVICES}/not-a-uuid", {}, 404, "not_found"),
    ("generate-anonymous", "POST", GENERATE, {}, 401, "not_authenticated"),
    ("generate-wrong-method", "GET", GENERATE, {}, 405, "method_not_allowed"),
]


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "code"),
    [pytest.param(m, p, k, s, c, id=name) for name, m, p, k, s, c in BAD_INPUTS],
)
async def test_bad_input_gets_problem_json_with_its_code(
    device_client: httpx.AsyncClient,
    method: str,
    path: str,
    kwargs: dict[str, Any],
    status: int,
    code: str,
) -> None:
    response = await device_client.request(method, path, **kwargs)

    assert_problem(response, status, code)
    assert await Device.all().count() == 0


# -- cleanup -------------------------------------------------------------------------------


async def test_cleanup_deletes_dead_codes_and_stale_connections_and_keeps_the_audit_log(
    app: Starlette, client: httpx.AsyncClient, device_client: httpx.AsyncClient
) -> None:
    settings: Settings = app.state.settings.model_copy(update={"app_device_retention_days": 10})
    user = await make_user(Role.ADMIN)
    admin = await sign_in(client, user)
    kept = await connect(admin, device_client, deviceName="In use")
    revoked = await connect(admin, device_client, deviceName="Revoked")
    idle = await connect(admin, device_client, deviceName="Idle")
    await client.delete(f"{APP_DEVICES}/{revoked.device_id}", headers=admin.write_headers())
    expired_qr = await generate(admin)
    await cancel_from_console(admin)
    assert await app_onboarding.cleanup(now=clock.now(), settings=settings) == 0

    clock.advance(timedelta(days=11))
    admin = await sign_in(client, user)
    live_qr = await generate(admin)
    in_use = await refresh(device_client, kept.refresh_token)
    assert in_use.status_code == 200
    audit_rows = await AuditEvent.all().count()

    deleted = await app_onboarding.cleanup(now=clock.now(), settings=settings)

    # Two connections (revoked and idle), their two used QR codes, and the two dead codes.
    assert deleted == 6
    assert await app_onboarding.cleanup(now=clock.now(), settings=settings) == 0
    remaining = await Device.filter(kind="admin_app").values_list("id", flat=True)
    assert [str(d) for d in remaining] == [kept.device_id]
    assert not await DeviceToken.filter(device_id__in=[revoked.device_id, idle.device_id]).exists()
    sessions = await PairingSession.filter(kind="admin_app").values_list("state", flat=True)
    assert sorted(sessions) == ["minted", "redeemed"]
    refused = await exchange(device_client, expired_qr["payload"]["token"])
    assert_problem(refused, 400, "invalid_code")
    assert await AuditEvent.all().count() == audit_rows
    assert await AuditEvent.filter(action="app.device.connected").count() == 3
    assert await AuditEvent.filter(action="app.device.revoked").count() == 1
    assert (await exchange(device_client, live_qr["payload"]["token"])).status_code == 200


async def test_cleanup_deletes_spent_refresh_tokens_once_they_could_no_longer_be_used(
    app: Starlette, admin: SignedInClient, device_client: httpx.AsyncClient
) -> None:
    settings: Settings = app.state.settings
    phone = await connect(admin, device_client)
    clock.advance(timedelta(days=settings.app_refresh_token_ttl_days - 1))
    current = (await refresh(device_client, phone.refresh_token)).json()
    assert await app_onboarding.cleanup(now=clock.now(), settings=settings) == 0

    clock.advance(timedelta(days=2))

    # The first refresh token is past its lifetime: even a replay of it could not be used.
    assert await app_onboarding.cleanup(now=clock.now(), settings=settings) == 1
    current = (await refresh(device_client, current["refreshToken"])).json()
    assert await app_onboarding.cleanup(now=clock.now(), settings=settings) == 0
    states = await DeviceToken.filter(device_id=phone.device_id).values_list("state", flat=True)
    assert sorted(states) == ["active", "rotated"]
    assert_problem(await refresh(device_client, phone.refresh_token), 401, "invalid_credentials")
    assert (await Device.get(id=phone.device_id)).state == "active"


# -- the console page ----------------------------------------------------------------------


async def test_console_page_explains_itself_until_a_device_is_connected(
    admin: SignedInClient, device_client: httpx.AsyncClient
) -> None:
    page = await admin.client.get("/admin/mobile-app")
    assert page.status_code == 200
    assert page.headers["cache-control"] == "no-store"
    assert 'data-testid="empty-state"' in page.text
    assert "Generate QR Code" in page.text
    assert "Never share the QR code" in page.text

    headers = {**admin.write_headers(), "HX-Request": "true"}
    card = await admin.client.post("/admin/mobile-app/qr", headers=headers)
    assert card.status_code == 200
    assert card.headers["cache-control"] == "no-store"
    assert "<svg" in card.text
    assert 'data-countdown="' in card.text
    session = await PairingSession.get(kind="admin_app")
    status_url = f"/admin/mobile-app/qr/{session.id}"
    assert 'data-state="minted"' in (await admin.client.get(status_url)).text

    await connect(admin, device_client, deviceName="Field tablet", platform="android")
    listed = await admin.client.get("/admin/mobile-app/devices")
    assert "Field tablet" in listed.text
    assert "Android" in listed.text
    assert PHONE_IP in listed.text
    assert "Revoke Access" in listed.text
    assert 'data-testid="empty-state"' not in listed.text
    # The fleet page is for scanners; the app is listed here only.
    assert "Field tablet" not in (await admin.client.get("/admin/devices")).text


async def test_console_revoke_lists_the_device_no_more_and_cuts_it_off(
    admin: SignedInClient, device_client: httpx.AsyncClient
) -> None:
    phone = await connect(admin, device_client, deviceName="Old phone")
    headers = {**admin.write_headers(), "HX-Request": "true"}

    revoked = await admin.client.post(
        f"/admin/mobile-app/devices/{phone.device_id}/revoke", headers=headers
    )

    assert revoked.status_code == 200
    assert "Old phone" not in revoked.text
    assert 'data-testid="empty-state"' in revoked.text
    assert_problem(
        await device_client.get(FLEET, headers=bearer(phone.access_token)), 401, "token_revoked"
    )
    again = await admin.client.post(
        f"/admin/mobile-app/devices/{phone.device_id}/revoke", headers=headers
    )
    assert again.status_code == 200
    assert await AuditEvent.filter(action="app.device.revoked").count() == 1


async def test_console_status_reports_the_connection_and_cancel_withdraws_a_code(
    admin: SignedInClient, device_client: httpx.AsyncClient, tmp_path: Path
) -> None:
    headers = {**admin.write_headers(), "HX-Request": "true"}
    card = await admin.client.post("/admin/mobile-app/qr", headers=headers)
    first = await PairingSession.get(kind="admin_app")
    second_id = await cancel_from_console(admin)
    # The page holds the token only inside the QR code: read it as the phone would.
    svg = card.text[card.text.index("<svg") : card.text.index("</svg>") + len("</svg>")]
    token = json.loads(_decode_qr(svg, tmp_path))["token"]
    assert token not in card.text
    assert (await exchange(device_client, token, deviceName="Pixel 8")).status_code == 200

    status = await admin.client.get(f"/admin/mobile-app/qr/{first.id}")
    assert 'data-state="redeemed"' in status.text
    assert "Connected: Pixel 8" in status.text
    assert status.headers["hx-trigger"] == "app-devices-changed"

    assert (await PairingSession.get(id=second_id)).state == "cancelled"
    assert (
        'data-state="cancelled"'
        in (await admin.client.get(f"/admin/mobile-app/qr/{second_id}")).text
    )
    cancelled = await AuditEvent.get(action="app.qr.cancelled")
    assert (cancelled.metadata["reason"], cancelled.target_id) == ("admin", second_id)


async def test_operators_see_the_page_without_the_generate_button(
    client: httpx.AsyncClient,
) -> None:
    await sign_in(client, await make_user(Role.OPERATOR))

    page = await client.get("/admin/mobile-app")

    assert page.status_code == 200
    assert "Only admins can connect the admin app." in page.text
    assert 'data-testid="generate-qr"' not in page.text
