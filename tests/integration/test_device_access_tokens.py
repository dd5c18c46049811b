"""The Bearer JWT on the device calls (DESIGN §5, §8): expired, ended, forged or foreign."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import OctKey, OKPKey
from starlette.applications import Starlette

from app import clock
from app.auth.jwt import (
    ADMIN_AUDIENCE,
    ADMIN_TOKEN_TYPE,
    DEVICE_AUDIENCE,
    DEVICE_TOKEN_TYPE,
    Keyring,
)
from app.edge.runtime import runtime
from app.services import signing_keys
from app.settings import Settings
from simulator.protocol import HEARTBEAT, JWKS, Credentials, DeviceApi
from simulator.protocol import PUSH_TOKEN as PUSH
from tests.factories import EndCredentials, SignedInClient
from tests.scanner import PUSH_TOKEN, bearer, heartbeat
from tests.wire import assert_problem, b64, unb64, unverified

pytestmark = pytest.mark.usefixtures("presence_tasks_end_before_shutdown")

BEARER_CALLS = pytest.mark.parametrize(("method", "path"), [("POST", HEARTBEAT), ("PUT", PUSH)])


def _body(path: str) -> dict[str, str]:
    return {"pushToken": "ab" * 32, "apnsEnvironment": "sandbox"} if path == PUSH else {}


@pytest.mark.parametrize("used_before", [True, False], ids=["verified-before", "first-use"])
async def test_heartbeat_refuses_an_expired_access_token(
    device_client: httpx.AsyncClient,
    device_api: DeviceApi,
    device: Credentials,
    settings: Settings,
    used_before: bool,
) -> None:
    # Frozen: with a running clock the last second of the token could tick over mid-test.
    with clock.frozen():
        token = (await device_api.access_token(device)).token
        if used_before:
            assert (await heartbeat(device_client, token)).status_code == 200
        clock.advance(timedelta(seconds=settings.access_token_lifetime_seconds - 1))
        assert (await heartbeat(device_client, token)).status_code == 200

        clock.advance(timedelta(seconds=1))

        assert_problem(await heartbeat(device_client, token), 401, "token_expired")
    fresh = (await device_api.access_token(device)).token
    assert (await heartbeat(device_client, fresh)).is_success


@BEARER_CALLS
async def test_access_token_dies_on_the_next_request_when_its_credentials_end(
    device_client: httpx.AsyncClient,
    access_token: str,
    end_credentials: EndCredentials,
    method: str,
    path: str,
) -> None:
    headers = bearer(access_token)
    assert (await device_client.request(method, path, json=_body(path), headers=headers)).is_success

    await end_credentials()

    response = await device_client.request(method, path, json=_body(path), headers=headers)
    assert_problem(response, 401, "token_revoked")


@dataclass(frozen=True)
class Genuine:
    """A real access token, and what someone holding it and the JWKS could forge from it."""

    token: str
    header: dict[str, Any]
    claims: dict[str, Any]
    public_jwk: dict[str, Any]
    keyring: Keyring
    elsewhere: Keyring  # the same signing key, issuing for another service

    def signed(
        self,
        *,
        token_type: str = DEVICE_TOKEN_TYPE,
        audience: str = DEVICE_AUDIENCE,
        keyring: Keyring | None = None,
    ) -> str:
        token, _ = (keyring or self.keyring).sign(
            token_type=token_type,
            audience=audience,
            subject=self.claims["sub"],
            token_id=self.claims["tid"],
            scope=tuple(self.claims["scope"].split()),
            issued_at=int(clock.now().timestamp()),
            lifetime=600,
        )
        return token


def _alg_none(g: Genuine) -> dict[str, str]:
    return bearer(f"{b64({**g.header, 'alg': 'none'})}.{b64(g.claims)}.")


def _hs256_with_any_key(g: Genuine) -> dict[str, str]:
    header = {**g.header, "alg": "HS256"}
    return bearer(jwt.encode(header, g.claims, OctKey.generate_key(256), algorithms=["HS256"]))


def _hs256_keyed_with_the_public_key(g: Genuine) -> dict[str, str]:
    key = OctKey.import_key(unb64(g.public_jwk["x"]))
    header = {**g.header, "alg": "HS256"}
    return bearer(jwt.encode(header, g.claims, key, algorithms=["HS256"]))


def _own_key_in_jwk_header(g: Genuine) -> dict[str, str]:
    own = OKPKey.generate_key("Ed25519")
    header = {"alg": "Ed25519", "typ": "device+jwt", "jwk": dict(own.as_dict(private=False))}
    return bearer(jwt.encode(header, g.claims, own, algorithms=["Ed25519"]))


def _own_key_with_unknown_kid(g: Genuine) -> dict[str, str]:
    own = OKPKey.generate_key("Ed25519", parameters={"kid": uuid.uuid4().hex})
    header = {"alg": "Ed25519", "typ": "device+jwt", "kid": own.kid}
    return bearer(jwt.encode(header, g.claims, own, algorithms=["Ed25519"]))


def _own_key_under_the_real_kid(g: Genuine) -> dict[str, str]:
    own = OKPKey.generate_key("Ed25519")
    return bearer(jwt.encode(g.header, g.claims, own, algorithms=["Ed25519"]))


def _claims_changed_after_signing(g: Genuine) -> dict[str, str]:
    header, _, signature = g.token.split(".")
    claims = {**g.claims, "sub": str(uuid.uuid4())}
    return bearer(f"{header}.{b64(claims)}.{signature}")


FORGERIES = [
    pytest.param(lambda g: {}, id="no-authorization-header"),
    pytest.param(lambda g: {"Authorization": f"Basic {g.token}"}, id="basic-scheme"),
    pytest.param(lambda g: {"Authorization": "Bearer "}, id="empty-bearer"),
    pytest.param(lambda g: bearer("not-a-jwt"), id="not-a-jwt"),
    pytest.param(_alg_none, id="alg-none"),
    pytest.param(_hs256_with_any_key, id="hs256-signed"),
    pytest.param(_hs256_keyed_with_the_public_key, id="hs256-keyed-with-the-public-key"),
    pytest.param(_own_key_in_jwk_header, id="own-key-in-jwk-header"),
    pytest.param(_own_key_with_unknown_kid, id="own-key-unknown-kid"),
    pytest.param(_own_key_under_the_real_kid, id="own-key-under-the-real-kid"),
    pytest.param(_claims_changed_after_signing, id="claims-changed-after-signing"),
    pytest.param(lambda g: bearer(g.signed(token_type=ADMIN_TOKEN_TYPE)), id="typ-admin-jwt"),
    pytest.param(lambda g: bearer(g.signed(audience=ADMIN_AUDIENCE)), id="wrong-audience"),
    pytest.param(lambda g: bearer(g.signed(keyring=g.elsewhere)), id="wrong-issuer"),
]


@pytest.fixture
async def genuine(
    app: Starlette, settings: Settings, device_client: httpx.AsyncClient, access_token: str
) -> Genuine:
    header, claims = unverified(access_token)
    jwks = (await device_client.get(JWKS)).json()
    public_jwk = next(k for k in jwks["keys"] if k["kid"] == header["kid"])
    elsewhere = await signing_keys.load_keyring(
        settings.model_copy(update={"public_base_url": "https://elsewhere.example"})
    )
    return Genuine(access_token, header, claims, public_jwk, runtime(app).keyring, elsewhere)


@pytest.mark.parametrize("forge", FORGERIES)
@BEARER_CALLS
async def test_device_calls_refuse_forged_and_foreign_tokens(
    admin: SignedInClient,
    device_client: httpx.AsyncClient,
    device: Credentials,
    genuine: Genuine,
    forge: Callable[[Genuine], dict[str, str]],
    method: str,
    path: str,
) -> None:
    response = await device_client.request(method, path, json=_body(path), headers=forge(genuine))

    assert_problem(response, 401, "invalid_credentials")
    detail = await admin.api.device(device.device_id)
    assert detail["online"] is False
    assert detail["pushTokenLast8"] == PUSH_TOKEN[-8:]
    # The genuine token it was forged from still works.
    assert (await heartbeat(device_client, genuine.token)).status_code == 200


async def test_made_up_key_ids_do_not_empty_the_cache_of_verified_tokens(
    app: Starlette, device_client: httpx.AsyncClient, genuine: Genuine
) -> None:
    assert (await heartbeat(device_client, genuine.token)).status_code == 200
    keyring = runtime(app).keyring

    forged = await device_client.post(HEARTBEAT, headers=_own_key_with_unknown_kid(genuine))

    assert_problem(forged, 401, "invalid_credentials")
    assert runtime(app).keyring is keyring
