"""Admin-app tokens are verified strictly (DESIGN §8): never a device's, never forged."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import OctKey, OKPKey
from starlette.applications import Starlette

from app import clock
from app.auth.jwt import ADMIN_AUDIENCE, ADMIN_TOKEN_TYPE, DEVICE_AUDIENCE, DEVICE_TOKEN_TYPE
from app.edge.runtime import runtime
from simulator.admin import DEVICES, PAIRING_SESSIONS, AdminAppTokens
from simulator.protocol import TOKEN, Credentials
from tests.admin_phone import refresh
from tests.scanner import bearer, heartbeat
from tests.wire import assert_problem, b64, unverified


async def test_a_scanners_access_token_is_refused_by_the_admin_api(
    device_client: httpx.AsyncClient, access_token: str
) -> None:
    scanner_jwt = bearer(access_token)

    fleet = await device_client.get(DEVICES, headers=scanner_jwt)
    minted = await device_client.post(PAIRING_SESSIONS, headers=scanner_jwt)

    assert_problem(fleet, 401, "invalid_credentials")
    assert_problem(minted, 401, "invalid_credentials")


async def test_an_admin_app_access_token_is_refused_by_the_device_api(
    device_client: httpx.AsyncClient, phone: AdminAppTokens
) -> None:
    refused = await heartbeat(device_client, phone.access_token)

    assert_problem(refused, 401, "invalid_credentials")


async def test_a_refresh_token_is_no_device_pair(
    device_client: httpx.AsyncClient, phone: AdminAppTokens
) -> None:
    as_pair = {"deviceToken": phone.refresh_token, "deviceSecret": phone.refresh_token}

    refused = await device_client.post(TOKEN, json=as_pair)

    assert_problem(refused, 401, "invalid_credentials")


async def test_a_device_pair_is_no_refresh_token(
    device_client: httpx.AsyncClient, device: Credentials, phone: AdminAppTokens
) -> None:
    glued = f"{device.device_token}.{device.device_secret}"
    for attempt in (device.device_token, device.device_secret, glued):
        assert_problem(await refresh(device_client, attempt), 401, "invalid_credentials")


async def test_both_tokens_still_work_where_they_belong_after_being_tried_elsewhere(
    device_client: httpx.AsyncClient, device: Credentials, access_token: str, phone: AdminAppTokens
) -> None:
    glued = f"{device.device_token}.{device.device_secret}"
    await device_client.get(DEVICES, headers=bearer(access_token))
    await device_client.post(PAIRING_SESSIONS, headers=bearer(access_token))
    await heartbeat(device_client, phone.access_token)
    as_pair = {"deviceToken": phone.refresh_token, "deviceSecret": phone.refresh_token}
    await device_client.post(TOKEN, json=as_pair)
    for attempt in (device.device_token, device.device_secret, glued):
        await refresh(device_client, attempt)

    assert (await heartbeat(device_client, access_token)).status_code == 200
    fleet = await device_client.get(DEVICES, headers=bearer(phone.access_token))
    assert fleet.status_code == 200


def _signed_elsewhere(claims: dict[str, Any], header: dict[str, Any], _: Starlette) -> str:
    own = OKPKey.generate_key("Ed25519", parameters={"kid": header["kid"]})
    return jwt.encode(header, claims, own, algorithms=["Ed25519"])


def _signed_by_us(app: Starlette, claims: dict[str, Any], token_type: str, audience: str) -> str:
    """A genuine signature on the wrong type or audience."""
    token, _ = runtime(app).keyring.sign(
        token_type=token_type,
        audience=audience,
        subject=claims["sub"],
        token_id=claims["tid"],
        scope=(),
        issued_at=claims["iat"],
        lifetime=900,
    )
    return token


FORGED: list[tuple[str, Callable[[dict[str, Any], dict[str, Any], Starlette], str]]] = [
    ("not-a-jwt", lambda c, h, a: "not-a-jwt"),
    ("alg-none", lambda c, h, a: f"{b64({**h, 'alg': 'none'})}.{b64(c)}."),
    (
        "hs256",
        lambda c, h, a: jwt.encode(
            {**h, "alg": "HS256"}, c, OctKey.generate_key(256), algorithms=["HS256"]
        ),
    ),
    ("own-key-under-the-real-kid", _signed_elsewhere),
    ("typ-device-jwt", lambda c, h, a: _signed_by_us(a, c, DEVICE_TOKEN_TYPE, ADMIN_AUDIENCE)),
    ("device-audience", lambda c, h, a: _signed_by_us(a, c, ADMIN_TOKEN_TYPE, DEVICE_AUDIENCE)),
]


@pytest.mark.parametrize(("name", "forge"), FORGED, ids=[name for name, _ in FORGED])
async def test_the_admin_api_refuses_forged_admin_tokens(
    app: Starlette,
    device_client: httpx.AsyncClient,
    phone: AdminAppTokens,
    name: str,
    forge: Callable[[dict[str, Any], dict[str, Any], Starlette], str],
) -> None:
    header, claims = unverified(phone.access_token)

    response = await device_client.get(DEVICES, headers=bearer(forge(claims, header, app)))

    assert_problem(response, 401, "invalid_credentials")
    assert (await device_client.get(DEVICES, headers=bearer(phone.access_token))).status_code == 200


async def test_an_expired_admin_token_is_token_expired(
    device_client: httpx.AsyncClient, phone: AdminAppTokens
) -> None:
    clock.advance(timedelta(minutes=15))

    response = await device_client.get(DEVICES, headers=bearer(phone.access_token))

    assert_problem(response, 401, "token_expired")
