"""`GET /.well-known/jwks.json` and signing-key rotation (DESIGN §5): verifiable offline."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from starlette.applications import Starlette

from app import clock
from app.edge.runtime import runtime
from app.services import signing_keys
from app.settings import Settings
from simulator.protocol import JWKS, Credentials, DeviceApi
from tests.scanner import heartbeat
from tests.wire import assert_problem, unverified

pytestmark = pytest.mark.usefixtures("presence_tasks_end_before_shutdown")

GRACE = timedelta(minutes=5)


async def test_jwks_publishes_public_ed25519_keys_only(device_client: httpx.AsyncClient) -> None:
    response = await device_client.get(JWKS)

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert "public" in response.headers["cache-control"]
    keys = response.json()["keys"]
    assert keys
    for key in keys:
        assert {k: key[k] for k in ("kty", "crv", "alg", "use")} == {
            "kty": "OKP",
            "crv": "Ed25519",
            "alg": "Ed25519",
            "use": "sig",
        }
        assert key["kid"]
        assert "d" not in key


async def refresh_keyring(app: Starlette, settings: Settings) -> None:
    """What each server does every `signing_keys.REFRESH_SECONDS`."""
    runtime(app).keyring = await signing_keys.refreshed(runtime(app).keyring, settings)


async def published_kids(device_client: httpx.AsyncClient) -> set[str]:
    return {k["kid"] for k in (await device_client.get(JWKS)).json()["keys"]}


@dataclass(frozen=True)
class KeyRotation:
    old_access: str
    old_kid: str
    new_kid: str
    refreshed_at: datetime  # the servers' first keyring refresh after the rotation
    grace_over_at: datetime


@pytest.fixture
async def key_rotation(access_token: str, settings: Settings) -> KeyRotation:
    """A device holds a token signed by the current key when a new key takes over."""
    start = clock.now()
    new_key = await signing_keys.rotate(settings=settings, grace=GRACE)
    return KeyRotation(
        old_access=access_token,
        old_kid=unverified(access_token)[0]["kid"],
        new_kid=new_key.id,
        refreshed_at=start + timedelta(seconds=signing_keys.REFRESH_SECONDS),
        grace_over_at=start + GRACE + timedelta(seconds=1),
    )


async def test_a_new_signing_key_is_published_beside_the_old_one(
    app: Starlette, device_client: httpx.AsyncClient, settings: Settings, key_rotation: KeyRotation
) -> None:
    with clock.frozen(key_rotation.refreshed_at):
        await refresh_keyring(app, settings)

        assert {key_rotation.old_kid, key_rotation.new_kid} <= await published_kids(device_client)


async def test_tokens_of_the_old_signing_key_work_through_the_grace_period(
    app: Starlette, device_client: httpx.AsyncClient, settings: Settings, key_rotation: KeyRotation
) -> None:
    with clock.frozen(key_rotation.refreshed_at):
        await refresh_keyring(app, settings)

        assert (await heartbeat(device_client, key_rotation.old_access)).status_code == 200


async def test_new_tokens_are_signed_by_the_new_key_and_both_verify_against_the_jwks(
    app: Starlette,
    device_client: httpx.AsyncClient,
    device_api: DeviceApi,
    device: Credentials,
    settings: Settings,
    key_rotation: KeyRotation,
) -> None:
    with clock.frozen(key_rotation.refreshed_at):
        await refresh_keyring(app, settings)

        new_access = (await device_api.access_token(device)).token

        assert unverified(new_access)[0]["kid"] == key_rotation.new_kid
        jwks = KeySet.import_key_set((await device_client.get(JWKS)).json())
        jwt.decode(new_access, jwks, algorithms=["Ed25519"])
        jwt.decode(key_rotation.old_access, jwks, algorithms=["Ed25519"])


async def test_the_old_signing_key_is_withdrawn_once_the_grace_period_ends(
    app: Starlette, device_client: httpx.AsyncClient, settings: Settings, key_rotation: KeyRotation
) -> None:
    with clock.frozen(key_rotation.refreshed_at):
        await refresh_keyring(app, settings)
    with clock.frozen(key_rotation.grace_over_at):
        await refresh_keyring(app, settings)

        published = await published_kids(device_client)

    assert key_rotation.old_kid not in published
    assert key_rotation.new_kid in published


async def test_tokens_of_a_withdrawn_signing_key_are_refused(
    app: Starlette,
    device_client: httpx.AsyncClient,
    device_api: DeviceApi,
    device: Credentials,
    settings: Settings,
    key_rotation: KeyRotation,
) -> None:
    with clock.frozen(key_rotation.refreshed_at):
        await refresh_keyring(app, settings)
        new_access = (await device_api.access_token(device)).token
    with clock.frozen(key_rotation.grace_over_at):
        await refresh_keyring(app, settings)

        # Still within its own lifetime, but signed by a key no longer published.
        old = await heartbeat(device_client, key_rotation.old_access)
        assert_problem(old, 401, "invalid_credentials")
        assert (await heartbeat(device_client, new_access)).status_code == 200
