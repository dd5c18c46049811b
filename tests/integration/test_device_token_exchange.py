"""`POST /api/devices/token` (DESIGN §5): credentials traded for a short-lived access JWT."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from joserfc.jwt import JWTClaimsRegistry

from app import clock
from app.auth.jwt import DEVICE_AUDIENCE
from app.models import AuditEvent, DeviceToken
from app.settings import Settings
from simulator.protocol import JWKS, ROTATE, TOKEN, Credentials, DeviceApi
from tests.factories import EndCredentials, SignedInClient
from tests.wire import assert_problem, iso, unverified

pytestmark = pytest.mark.usefixtures("presence_tasks_end_before_shutdown")

PUBLIC_BASE_URL = "http://testserver"


@pytest.fixture
async def exchanged(device_client: httpx.AsyncClient, device: Credentials) -> httpx.Response:
    response = await device_client.post(TOKEN, json=device.wire())
    assert response.status_code == 200, response.text
    return response


async def test_token_answer_is_an_uncached_bearer_token_for_ten_minutes(
    exchanged: httpx.Response,
) -> None:
    assert exchanged.headers["cache-control"].startswith("no-store")
    body = exchanged.json()
    assert body["tokenType"] == "Bearer"
    assert body["expiresIn"] == 600


async def test_token_is_an_ed25519_device_jwt_without_an_embedded_key(
    exchanged: httpx.Response,
) -> None:
    header, _ = unverified(exchanged.json()["accessToken"])

    assert header["alg"] == "Ed25519"
    assert header["typ"] == "device+jwt"
    assert "jwk" not in header


async def test_token_verifies_against_the_jwks_with_the_device_claims(
    admin: SignedInClient,
    device_client: httpx.AsyncClient,
    device: Credentials,
    exchanged: httpx.Response,
) -> None:
    body = exchanged.json()
    jwks = (await device_client.get(JWKS)).json()

    verified = jwt.decode(body["accessToken"], KeySet.import_key_set(jwks), algorithms=["Ed25519"])

    token_id = (await admin.api.device(device.device_id))["tokens"][0]["tokenId"]
    JWTClaimsRegistry(
        iss={"essential": True, "value": PUBLIC_BASE_URL},
        aud={"essential": True, "value": DEVICE_AUDIENCE},
        sub={"essential": True, "value": device.device_id},
        tid={"essential": True, "value": token_id},
        jti={"essential": True},
        exp={"essential": True},
        scope={"essential": True, "value": "scan push"},
    ).validate(verified.claims)
    claims = verified.claims
    assert claims["exp"] - claims["iat"] == 600
    assert body["expiresAtIso"] == iso(clock.from_epoch(claims["exp"]))


async def test_each_token_has_its_own_jti(
    device_api: DeviceApi, device: Credentials, exchanged: httpx.Response
) -> None:
    first = unverified(exchanged.json()["accessToken"])[1]["jti"]

    again = (await device_api.access_token(device)).token

    assert unverified(again)[1]["jti"] != first


def _swap_random_part(device_token: str) -> str:
    """The same lookup id with another random part: `pxd_<lookup id>_<random>`."""
    prefix, lookup_id, random_part = device_token.split("_", 2)
    return f"{prefix}_{lookup_id}_{random_part[1:]}{'B' if random_part[0] == 'A' else 'A'}"


BAD_CREDENTIALS = [
    pytest.param(
        lambda d: {"deviceToken": f"pxd_{'0' * 16}_{'A' * 32}", "deviceSecret": d.device_secret},
        id="unknown-token",
    ),
    pytest.param(
        lambda d: {"deviceToken": "pxd_garbage", "deviceSecret": d.device_secret},
        id="malformed-token",
    ),
    pytest.param(
        lambda d: {
            "deviceToken": _swap_random_part(d.device_token),
            "deviceSecret": d.device_secret,
        },
        id="known-lookup-id-wrong-token",
    ),
    pytest.param(
        lambda d: {"deviceToken": d.device_token, "deviceSecret": d.device_secret + "x"},
        id="wrong-secret",
    ),
    pytest.param(
        lambda d: {"deviceToken": d.device_token, "deviceSecret": d.device_token},
        id="token-sent-as-secret",
    ),
]


@pytest.mark.parametrize("path", [TOKEN, ROTATE])
@pytest.mark.parametrize("sent", BAD_CREDENTIALS)
async def test_credentials_that_do_not_match_are_invalid_credentials(
    device_client: httpx.AsyncClient,
    device: Credentials,
    path: str,
    sent: Callable[[Credentials], dict[str, str]],
) -> None:
    body = sent(device)

    response = await device_client.post(path, json=body)

    assert_problem(response, 401, "invalid_credentials")
    assert all(value not in response.text for value in body.values())
    assert (await device_client.post(TOKEN, json=device.wire())).status_code == 200


@pytest.fixture
async def credentials_expire_at(admin: SignedInClient, device: Credentials) -> datetime:
    detail = await admin.api.device(device.device_id)
    return datetime.fromisoformat(detail["tokens"][0]["expiresAtIso"])


async def test_credentials_live_for_the_configured_number_of_days(
    device_client: httpx.AsyncClient,
    device: Credentials,
    settings: Settings,
    credentials_expire_at: datetime,
) -> None:
    issued_at = credentials_expire_at - timedelta(days=settings.device_credential_ttl_days)
    assert abs((issued_at - clock.now()).total_seconds()) < 60

    with clock.frozen(credentials_expire_at - timedelta(seconds=1)):
        assert (await device_client.post(TOKEN, json=device.wire())).status_code == 200


@pytest.mark.parametrize("path", [TOKEN, ROTATE])
async def test_credentials_past_their_lifetime_are_token_expired(
    device_client: httpx.AsyncClient,
    device: Credentials,
    credentials_expire_at: datetime,
    path: str,
) -> None:
    with clock.frozen(credentials_expire_at):
        first = await device_client.post(path, json=device.wire())
        second = await device_client.post(path, json=device.wire())

    assert_problem(first, 401, "token_expired")
    assert_problem(second, 401, "token_expired")


@pytest.mark.parametrize("path", [TOKEN, ROTATE])
async def test_credentials_past_their_lifetime_expire_once(
    device_client: httpx.AsyncClient,
    device: Credentials,
    credentials_expire_at: datetime,
    path: str,
) -> None:
    with clock.frozen(credentials_expire_at):
        for _ in range(2):
            await device_client.post(path, json=device.wire())

    assert (await DeviceToken.get(device_id=device.device_id)).state == "expired"
    assert await AuditEvent.filter(action="device.token.expired").count() == 1


async def test_token_endpoint_refuses_ended_credentials_as_token_revoked(
    device_client: httpx.AsyncClient, device: Credentials, end_credentials: EndCredentials
) -> None:
    await end_credentials()

    assert_problem(await device_client.post(TOKEN, json=device.wire()), 401, "token_revoked")
