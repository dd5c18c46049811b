"""The device runtime API (DESIGN §5), driven over HTTP as a paired scanner app drives it."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet, OctKey, OKPKey
from joserfc.jwt import JWTClaimsRegistry
from starlette.applications import Starlette

from app import clock
from app.auth.jwt import (
    ADMIN_AUDIENCE,
    ADMIN_TOKEN_TYPE,
    DEVICE_AUDIENCE,
    DEVICE_TOKEN_TYPE,
    Keyring,
)
from app.models import AuditEvent, DeviceToken
from app.models.user import Role
from app.presence.redis import RedisPresenceStore
from app.services import credentials, signing_keys
from app.settings import Settings
from tests.factories import SignedInClient, make_user, sign_in
from tests.pairing_client import (
    PUSH_TOKEN,
    PairedDevice,
    access_token,
    bearer,
    heartbeat,
    pair_device,
    rotate_credentials,
)

TOKEN = "/api/devices/token"
HEARTBEAT = "/api/devices/heartbeat"
PUSH = "/api/devices/push-token"
ROTATE = "/api/devices/credentials/rotate"
JWKS = "/.well-known/jwks.json"
PUBLIC_BASE_URL = "http://testserver"


@pytest.fixture
def settings(settings: Settings, request: pytest.FixtureRequest) -> Settings:
    """The suite's settings, with the overrides a test passes (indirect parametrize)."""
    return settings.model_copy(update=getattr(request, "param", {}))


@pytest.fixture(autouse=True)
async def _presence_tasks_end_before_shutdown(app: Starlette) -> AsyncIterator[None]:
    """End the Redis presence store's background tasks before the app stops.

    Its `stop()` cancels them once and waits, but redis-py can swallow a cancellation that
    lands mid-command (a heartbeat flush), and shutdown then hangs; cancelling until each
    task has ended is what `stop()` itself should do. Pending heartbeats are still written
    by `stop()`.
    """
    yield
    store = app.state.presence
    if isinstance(store, RedisPresenceStore):
        for task in store._tasks:
            while not task.done():
                task.cancel()
                await asyncio.wait([task], timeout=0.1)


@pytest.fixture
async def admin(client: httpx.AsyncClient) -> SignedInClient:
    return await sign_in(client, await make_user(Role.ADMIN))


@pytest.fixture
async def device(admin: SignedInClient, device_client: httpx.AsyncClient) -> PairedDevice:
    return await pair_device(admin.client, device_client, admin.csrf_token)


DEVICES = "/api/v1/admin/devices"


def assert_problem(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == code


async def shown(admin: SignedInClient, device_id: str) -> dict[str, Any]:
    response = await admin.client.get(f"/api/v1/admin/devices/{device_id}")
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _unb64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def unverified(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims as any reader of the token sees them, without a key."""
    header, claims, _ = token.split(".")
    return json.loads(_unb64(header)), json.loads(_unb64(claims))


# -- POST /api/devices/token ----------------------------------------------------------------


async def test_token_is_an_ed25519_device_jwt_that_verifies_against_the_jwks(
    admin: SignedInClient, device_client: httpx.AsyncClient, device: PairedDevice
) -> None:
    response = await device_client.post(TOKEN, json=device.credentials())

    assert response.status_code == 200, response.text
    assert response.headers["cache-control"].startswith("no-store")
    body = response.json()
    assert body["tokenType"] == "Bearer"
    assert body["expiresIn"] == 600
    token = body["accessToken"]
    header, _ = unverified(token)
    assert header["alg"] == "Ed25519"
    assert header["typ"] == "device+jwt"
    assert "jwk" not in header

    jwks = (await device_client.get(JWKS)).json()
    verified = jwt.decode(token, KeySet.import_key_set(jwks), algorithms=["Ed25519"])
    token_id = (await shown(admin, device.device_id))["tokens"][0]["tokenId"]
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
    again = await access_token(device_client, device)
    assert unverified(again)[1]["jti"] != claims["jti"]


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
    device: PairedDevice,
    path: str,
    sent: Callable[[PairedDevice], dict[str, str]],
) -> None:
    body = sent(device)

    response = await device_client.post(path, json=body)

    assert_problem(response, 401, "invalid_credentials")
    assert all(value not in response.text for value in body.values())
    assert (await device_client.post(TOKEN, json=device.credentials())).status_code == 200


@pytest.mark.parametrize("path", [TOKEN, ROTATE])
async def test_credentials_past_their_lifetime_are_token_expired(
    admin: SignedInClient,
    device_client: httpx.AsyncClient,
    device: PairedDevice,
    settings: Settings,
    path: str,
) -> None:
    expires_at = datetime.fromisoformat(
        (await shown(admin, device.device_id))["tokens"][0]["expiresAtIso"]
    )
    issued_at = expires_at - timedelta(days=settings.device_credential_ttl_days)
    assert abs((issued_at - clock.now()).total_seconds()) < 60

    with clock.frozen(expires_at - timedelta(seconds=1)):
        assert (await device_client.post(TOKEN, json=device.credentials())).status_code == 200
    with clock.frozen(expires_at):
        first = await device_client.post(path, json=device.credentials())
        second = await device_client.post(path, json=device.credentials())

    assert_problem(first, 401, "token_expired")
    assert_problem(second, 401, "token_expired")
    assert (await DeviceToken.get(device_id=device.device_id)).state == "expired"
    assert await AuditEvent.filter(action="device.token.expired").count() == 1


async def _revoke_by_admin(
    admin: SignedInClient, device_client: httpx.AsyncClient, device: PairedDevice
) -> None:
    detail = await shown(admin, device.device_id)
    active = next(t for t in detail["tokens"] if t["state"] == "active")
    revoked = await admin.client.post(
        f"/api/v1/admin/devices/{device.device_id}/tokens/{active['tokenId']}/revoke",
        headers=admin.write_headers(),
    )
    assert revoked.status_code == 200, revoked.text


async def _rotate(
    admin: SignedInClient, device_client: httpx.AsyncClient, device: PairedDevice
) -> None:
    await rotate_credentials(device_client, device)
    clock.advance(credentials.ROTATION_RACE_WINDOW)


async def _deregister(
    admin: SignedInClient, device_client: httpx.AsyncClient, device: PairedDevice
) -> None:
    gone = await admin.client.delete(
        f"/api/v1/admin/devices/{device.device_id}", headers=admin.write_headers()
    )
    assert gone.status_code == 204, gone.text


Ending = Callable[[SignedInClient, httpx.AsyncClient, PairedDevice], Awaitable[None]]
ENDINGS = [
    pytest.param(_revoke_by_admin, id="revoked-by-admin"),
    pytest.param(_rotate, id="rotated"),
    pytest.param(_deregister, id="device-deregistered"),
]


@pytest.mark.parametrize("end", ENDINGS)
async def test_token_endpoint_refuses_ended_credentials_as_token_revoked(
    admin: SignedInClient, device_client: httpx.AsyncClient, device: PairedDevice, end: Ending
) -> None:
    await end(admin, device_client, device)

    assert_problem(await device_client.post(TOKEN, json=device.credentials()), 401, "token_revoked")


@pytest.mark.parametrize("path", [TOKEN, ROTATE])
async def test_reused_rotated_secret_revokes_the_devices_current_credentials(
    admin: SignedInClient, device_client: httpx.AsyncClient, device: PairedDevice, path: str
) -> None:
    current = await rotate_credentials(device_client, device)
    current_access = await access_token(device_client, current)
    assert (await heartbeat(device_client, current_access)).status_code == 200
    clock.advance(credentials.ROTATION_RACE_WINDOW)

    replayed = await device_client.post(path, json=device.credentials())

    assert_problem(replayed, 401, "token_revoked")
    # Whoever kept a copy and the device itself both lose: the admin must pair it again.
    assert_problem(
        await device_client.post(TOKEN, json=current.credentials()), 401, "token_revoked"
    )
    assert_problem(await heartbeat(device_client, current_access), 401, "token_revoked")
    detail = await shown(admin, device.device_id)
    assert [t["state"] for t in detail["tokens"]] == ["revoked", "rotated"]
    old_id, new_id = detail["tokens"][1]["tokenId"], detail["tokens"][0]["tokenId"]
    event = await AuditEvent.get(action="device.token.reuse_detected")
    assert event.metadata == {
        "deviceId": device.device_id,
        "tokenId": old_id,
        "revokedTokenIds": [new_id],
    }
    assert (event.actor_type, event.actor_id) == ("device", device.device_id)


@pytest.mark.parametrize("path", [TOKEN, ROTATE])
async def test_rotated_pair_seen_right_after_its_rotation_is_a_conflict_not_a_reuse(
    admin: SignedInClient, device_client: httpx.AsyncClient, device: PairedDevice, path: str
) -> None:
    current = await rotate_credentials(device_client, device)
    clock.advance(credentials.ROTATION_RACE_WINDOW - timedelta(seconds=1))

    raced = await device_client.post(path, json=device.credentials())

    assert_problem(raced, 409, "conflict")
    assert (await heartbeat(device_client, await access_token(device_client, current))).is_success
    states = [t["state"] for t in (await shown(admin, device.device_id))["tokens"]]
    assert states == ["active", "rotated"]
    assert await AuditEvent.filter(action="device.token.reuse_detected").count() == 0


async def test_audit_log_never_holds_a_secret(
    admin: SignedInClient, device_client: httpx.AsyncClient, device: PairedDevice
) -> None:
    first_access = await access_token(device_client, device)
    await heartbeat(device_client, first_access)
    new_push_token = "0f1e2d3c" * 8
    pushed = await device_client.put(
        PUSH,
        json={"pushToken": new_push_token, "apnsEnvironment": "sandbox"},
        headers=bearer(first_access),
    )
    assert pushed.status_code == 204
    rotated = await rotate_credentials(device_client, device)
    second_access = await access_token(device_client, rotated)
    clock.advance(credentials.ROTATION_RACE_WINDOW)
    await device_client.post(TOKEN, json=device.credentials())  # a replay: reuse detected
    await device_client.post(TOKEN, json={**rotated.credentials(), "deviceSecret": "pxs_guess"})

    secrets_seen = [
        first_access,
        second_access,
        PUSH_TOKEN,
        new_push_token,
        *(
            part
            for pair in (device, rotated)
            for part in (
                pair.device_token,
                pair.device_secret,
                pair.device_token.split("_", 2)[2],
                pair.device_secret.removeprefix("pxs_"),
            )
        ),
    ]
    events = await AuditEvent.all()
    assert {e.action for e in events} >= {
        "device.registered",
        "device.token.issued",
        "device.push_token.updated",
        "device.token.rotated",
        "device.token.reuse_detected",
    }
    stored = json.dumps([e.metadata for e in events])
    listed = (await admin.client.get("/api/v1/admin/audit", params={"limit": 200})).text
    for secret in secrets_seen:
        assert secret not in stored
        assert secret not in listed


# -- POST /api/devices/heartbeat ------------------------------------------------------------


async def test_heartbeat_marks_the_device_online_until_the_window_passes(
    admin: SignedInClient,
    device_client: httpx.AsyncClient,
    device: PairedDevice,
    settings: Settings,
) -> None:
    token = await access_token(device_client, device)
    before = await shown(admin, device.device_id)
    assert (before["online"], before["lastSeenAtIso"]) == (False, None)
    at = clock.now().replace(microsecond=0)
    window = timedelta(seconds=settings.heartbeat_online_window_seconds)

    with clock.frozen(at):
        response = await device_client.post(
            HEARTBEAT,
            json={"appVersion": "2.5.0", "osVersion": "17.6", "batteryLevel": 0.42},
            headers=bearer(token),
        )
    assert response.status_code == 200, response.text
    assert response.json() == {"nextHeartbeatInSeconds": settings.heartbeat_interval_seconds}

    with clock.frozen(at + window - timedelta(seconds=1)):
        online = await shown(admin, device.device_id)
    assert online["online"] is True
    assert online["lastSeenAtIso"] == iso(at)
    assert (online["appVersion"], online["osVersion"]) == ("2.5.0", "17.6")
    with clock.frozen(at + window):
        offline = await shown(admin, device.device_id)
    assert offline["online"] is False
    assert offline["lastSeenAtIso"] == iso(at)


async def test_fleet_online_filter_agrees_with_presence_before_any_flush(
    admin: SignedInClient,
    device_client: httpx.AsyncClient,
    device: PairedDevice,
    settings: Settings,
) -> None:
    silent = await pair_device(admin.client, device_client, admin.csrf_token)
    token = await access_token(device_client, device)
    at = clock.now().replace(microsecond=0)
    window = timedelta(seconds=settings.heartbeat_online_window_seconds)

    async def listed(online: str) -> dict[str, bool]:
        response = await admin.client.get(DEVICES, params={"online": online})
        assert response.status_code == 200, response.text
        return {item["deviceId"]: item["online"] for item in response.json()["items"]}

    with clock.frozen(at):
        response = await device_client.post(HEARTBEAT, headers=bearer(token))
        assert response.status_code == 200, response.text
        # No flush job has run: the database has no last-seen time for either device yet.
        assert await listed("true") == {device.device_id: True}
        assert await listed("false") == {silent.device_id: False}
    with clock.frozen(at + window):
        assert await listed("true") == {}
        assert await listed("false") == {device.device_id: False, silent.device_id: False}


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(None, id="no-body"),
        pytest.param({}, id="empty-object"),
        pytest.param({"batteryLevel": 0}, id="battery-empty"),
        pytest.param({"batteryLevel": 1}, id="battery-full"),
        pytest.param({"appVersion": "3.0.0"}, id="app-version-only"),
    ],
)
async def test_heartbeat_fields_are_optional(
    device_client: httpx.AsyncClient, device: PairedDevice, body: dict[str, Any] | None
) -> None:
    token = await access_token(device_client, device)

    response = await device_client.post(HEARTBEAT, json=body, headers=bearer(token))

    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param({"appVersion": "x" * 65}, "appVersion", id="app-version-too-long"),
        pytest.param({"osVersion": 17}, "osVersion", id="os-version-not-text"),
        pytest.param({"batteryLevel": 1.5}, "batteryLevel", id="battery-above-one"),
        pytest.param({"batteryLevel": -0.01}, "batteryLevel", id="battery-negative"),
        pytest.param({"batteryLevel": "full"}, "batteryLevel", id="battery-not-a-number"),
        pytest.param({"deviceId": str(uuid.uuid4())}, "deviceId", id="unknown-field"),
        pytest.param(["appVersion"], "body", id="not-an-object"),
    ],
)
async def test_heartbeat_refuses_bad_fields(
    admin: SignedInClient,
    device_client: httpx.AsyncClient,
    device: PairedDevice,
    body: Any,
    field: str,
) -> None:
    token = await access_token(device_client, device)

    response = await device_client.post(HEARTBEAT, json=body, headers=bearer(token))

    assert_problem(response, 400, "validation_error")
    assert [e["field"] for e in response.json()["errors"]] == [field]
    assert (await shown(admin, device.device_id))["online"] is False


async def _chunked(data: bytes) -> AsyncIterator[bytes]:
    """A body streamed without Content-Length, as some HTTP stacks send it."""
    for start in range(0, len(data), 1024):
        yield data[start : start + 1024]


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        pytest.param({"appVersion": "2.6.0"}, 200, None, id="valid"),
        pytest.param(
            {"appVersion": "2.6.0", "isAdmin": True}, 400, "validation_error", id="unknown-field"
        ),
        pytest.param({"appVersion": "x" * 65}, 400, "validation_error", id="app-version-too-long"),
        pytest.param({"pad": "x" * 16 * 1024}, 413, "payload_too_large", id="over-16-kib"),
    ],
)
async def test_heartbeat_judges_a_chunked_body_like_any_other(
    admin: SignedInClient,
    device_client: httpx.AsyncClient,
    device: PairedDevice,
    body: dict[str, Any],
    status: int,
    code: str | None,
) -> None:
    token = await access_token(device_client, device)
    headers = {**bearer(token), "Content-Type": "application/json"}

    response = await device_client.post(
        HEARTBEAT, content=_chunked(json.dumps(body).encode()), headers=headers
    )

    assert "content-length" not in response.request.headers
    if code is None:
        assert response.status_code == status, response.text
        assert (await shown(admin, device.device_id))["appVersion"] == "2.6.0"
    else:
        assert_problem(response, status, code)
        assert (await shown(admin, device.device_id))["online"] is False


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
    return bearer(f"{_b64({**g.header, 'alg': 'none'})}.{_b64(g.claims)}.")


def _hs256_with_any_key(g: Genuine) -> dict[str, str]:
    header = {**g.header, "alg": "HS256"}
    return bearer(jwt.encode(header, g.claims, OctKey.generate_key(256), algorithms=["HS256"]))


def _hs256_keyed_with_the_public_key(g: Genuine) -> dict[str, str]:
    key = OctKey.import_key(_unb64(g.public_jwk["x"]))
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
    return bearer(f"{header}.{_b64(claims)}.{signature}")


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
    app: Starlette, settings: Settings, device_client: httpx.AsyncClient, device: PairedDevice
) -> Genuine:
    token = await access_token(device_client, device)
    header, claims = unverified(token)
    jwks = (await device_client.get(JWKS)).json()
    public_jwk = next(k for k in jwks["keys"] if k["kid"] == header["kid"])
    elsewhere = await signing_keys.load_keyring(
        settings.model_copy(update={"public_base_url": "https://elsewhere.example"})
    )
    return Genuine(token, header, claims, public_jwk, app.state.keyring, elsewhere)


@pytest.mark.parametrize("forge", FORGERIES)
@pytest.mark.parametrize(("method", "path"), [("POST", HEARTBEAT), ("PUT", PUSH)])
async def test_device_calls_refuse_forged_and_foreign_tokens(
    admin: SignedInClient,
    device_client: httpx.AsyncClient,
    device: PairedDevice,
    genuine: Genuine,
    forge: Callable[[Genuine], dict[str, str]],
    method: str,
    path: str,
) -> None:
    body = {"pushToken": "ab" * 32, "apnsEnvironment": "sandbox"} if path == PUSH else {}

    response = await device_client.request(method, path, json=body, headers=forge(genuine))

    assert_problem(response, 401, "invalid_credentials")
    detail = await shown(admin, device.device_id)
    assert detail["online"] is False
    assert detail["pushTokenLast8"] == PUSH_TOKEN[-8:]
    # The genuine token it was forged from still works.
    assert (await heartbeat(device_client, genuine.token)).status_code == 200


async def test_made_up_key_ids_do_not_empty_the_cache_of_verified_tokens(
    app: Starlette, device_client: httpx.AsyncClient, genuine: Genuine
) -> None:
    assert (await heartbeat(device_client, genuine.token)).status_code == 200
    keyring = app.state.keyring

    forged = await device_client.post(HEARTBEAT, headers=_own_key_with_unknown_kid(genuine))

    assert_problem(forged, 401, "invalid_credentials")
    assert app.state.keyring is keyring


@pytest.mark.parametrize("used_before", [True, False], ids=["verified-before", "first-use"])
async def test_heartbeat_refuses_an_expired_access_token(
    device_client: httpx.AsyncClient, device: PairedDevice, settings: Settings, used_before: bool
) -> None:
    # Frozen: with a running clock the last second of the token could tick over mid-test.
    with clock.frozen():
        token = await access_token(device_client, device)
        if used_before:
            assert (await heartbeat(device_client, token)).status_code == 200
        clock.advance(timedelta(seconds=settings.access_token_lifetime_seconds - 1))
        assert (await heartbeat(device_client, token)).status_code == 200

        clock.advance(timedelta(seconds=1))

        assert_problem(await heartbeat(device_client, token), 401, "token_expired")
    assert (await heartbeat(device_client, await access_token(device_client, device))).is_success


@pytest.mark.parametrize("end", ENDINGS)
@pytest.mark.parametrize(("method", "path"), [("POST", HEARTBEAT), ("PUT", PUSH)])
async def test_access_token_dies_on_the_next_request_when_its_credentials_end(
    admin: SignedInClient,
    device_client: httpx.AsyncClient,
    device: PairedDevice,
    end: Ending,
    method: str,
    path: str,
) -> None:
    token = await access_token(device_client, device)
    body = {"pushToken": "ab" * 32, "apnsEnvironment": "sandbox"} if path == PUSH else {}
    assert (await device_client.request(method, path, json=body, headers=bearer(token))).is_success

    await end(admin, device_client, device)

    response = await device_client.request(method, path, json=body, headers=bearer(token))
    assert_problem(response, 401, "token_revoked")


@pytest.mark.parametrize(
    ("settings", "budget"),
    [
        pytest.param({}, 12, id="default-12-per-minute"),
        pytest.param({"heartbeats_per_device": "3/minute"}, 3, id="configured-3-per-minute"),
    ],
    indirect=["settings"],
)
async def test_heartbeats_are_rate_limited_per_device(
    admin: SignedInClient,
    device_client: httpx.AsyncClient,
    device: PairedDevice,
    budget: int,
) -> None:
    token = await access_token(device_client, device)
    for _ in range(budget):
        assert (await heartbeat(device_client, token)).status_code == 200

    limited = await heartbeat(device_client, token)

    assert_problem(limited, 429, "rate_limited")
    assert 0 < int(limited.headers["retry-after"]) <= 60
    # The budget belongs to the device, not to one access token.
    fresh = await access_token(device_client, device)
    assert_problem(await heartbeat(device_client, fresh), 429, "rate_limited")
    other = await pair_device(admin.client, device_client, admin.csrf_token)
    assert (await heartbeat(device_client, await access_token(device_client, other))).is_success


# -- PUT /api/devices/push-token ------------------------------------------------------------


async def test_push_token_update_shows_its_last_8_and_is_audited_without_the_token(
    admin: SignedInClient, device_client: httpx.AsyncClient, device: PairedDevice
) -> None:
    token = await access_token(device_client, device)
    new_push_token = "F0E1D2C3" * 8

    response = await device_client.put(
        PUSH,
        json={"pushToken": new_push_token, "apnsEnvironment": "sandbox"},
        headers=bearer(token),
    )

    assert response.status_code == 204, response.text
    detail = await shown(admin, device.device_id)
    assert detail["pushTokenLast8"] == "f0e1d2c3"
    assert detail["apnsEnvironment"] == "sandbox"
    event = await AuditEvent.get(action="device.push_token.updated")
    assert (event.actor_type, event.actor_id) == ("device", device.device_id)
    assert event.target_id == device.device_id
    assert event.metadata["pushTokenLast8"] == "f0e1d2c3"
    assert new_push_token.lower() not in json.dumps(event.metadata)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param(
            {"pushToken": "not-hex!", "apnsEnvironment": "sandbox"}, "pushToken", id="not-hex"
        ),
        pytest.param({"pushToken": "", "apnsEnvironment": "sandbox"}, "pushToken", id="empty"),
        pytest.param(
            {"pushToken": "a" * 201, "apnsEnvironment": "sandbox"}, "pushToken", id="too-long"
        ),
        pytest.param({"apnsEnvironment": "sandbox"}, "pushToken", id="missing"),
        pytest.param(
            {"pushToken": "ab" * 32, "apnsEnvironment": "staging"},
            "apnsEnvironment",
            id="unknown-environment",
        ),
        pytest.param(
            {"pushToken": "ab" * 32, "apnsEnvironment": "sandbox", "label": "x"},
            "label",
            id="unknown-field",
        ),
    ],
)
async def test_push_token_refuses_bad_values(
    admin: SignedInClient,
    device_client: httpx.AsyncClient,
    device: PairedDevice,
    body: dict[str, Any],
    field: str,
) -> None:
    token = await access_token(device_client, device)

    response = await device_client.put(PUSH, json=body, headers=bearer(token))

    assert_problem(response, 400, "validation_error")
    assert [e["field"] for e in response.json()["errors"]] == [field]
    assert (await shown(admin, device.device_id))["pushTokenLast8"] == PUSH_TOKEN[-8:]
    assert await AuditEvent.filter(action="device.push_token.updated").count() == 0


# -- POST /api/devices/credentials/rotate ---------------------------------------------------


async def test_rotation_issues_a_new_pair_and_retires_the_old_one_at_once(
    admin: SignedInClient, device_client: httpx.AsyncClient, device: PairedDevice
) -> None:
    old_access = await access_token(device_client, device)
    old_token_id = unverified(old_access)[1]["tid"]

    response = await device_client.post(ROTATE, json=device.credentials())

    assert response.status_code == 200, response.text
    assert response.headers["cache-control"].startswith("no-store")
    body = response.json()
    assert set(body) == {"deviceId", "deviceToken", "deviceSecret", "expiresAtIso", "capabilities"}
    assert body["deviceId"] == device.device_id
    assert body["capabilities"] == ["scan", "push"]
    assert body["deviceToken"].startswith("pxd_")
    assert body["deviceSecret"].startswith("pxs_")
    assert body["deviceToken"] != device.device_token
    assert body["deviceSecret"] != device.device_secret
    rotated = PairedDevice(device.device_id, body["deviceToken"], body["deviceSecret"])

    assert_problem(await heartbeat(device_client, old_access), 401, "token_revoked")
    new_access = await access_token(device_client, rotated)
    assert (await heartbeat(device_client, new_access)).status_code == 200
    new_token_id = unverified(new_access)[1]["tid"]
    detail = await shown(admin, device.device_id)
    assert [(t["tokenId"], t["state"]) for t in detail["tokens"]] == [
        (new_token_id, "active"),
        (old_token_id, "rotated"),
    ]
    assert detail["tokens"][0]["expiresAtIso"] == body["expiresAtIso"]
    event = await AuditEvent.get(action="device.token.rotated")
    assert event.metadata == {
        "deviceId": device.device_id,
        "tokenId": old_token_id,
        "newTokenId": new_token_id,
    }
    assert (event.actor_type, event.actor_id) == ("device", device.device_id)


async def test_concurrent_rotations_of_one_pair_have_exactly_one_winner(
    device_client: httpx.AsyncClient, device: PairedDevice
) -> None:
    responses = await asyncio.gather(
        *(device_client.post(ROTATE, json=device.credentials()) for _ in range(10))
    )

    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(200) == 1, statuses
    refused = {(r.status_code, r.json()["code"]) for r in responses if r.status_code != 200}
    assert refused <= {(409, "conflict"), (401, "token_revoked")}, refused
    winner = next(r.json() for r in responses if r.status_code == 200)
    active = await DeviceToken.filter(device_id=device.device_id, state="active")
    assert len(active) == 1
    assert active[0].lookup_id in winner["deviceToken"]
    assert await AuditEvent.filter(action="device.token.rotated").count() == 1
    rotated = PairedDevice(device.device_id, winner["deviceToken"], winner["deviceSecret"])
    assert (await heartbeat(device_client, await access_token(device_client, rotated))).is_success


# -- GET /.well-known/jwks.json -------------------------------------------------------------


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
    app.state.keyring = await signing_keys.refreshed(app.state.keyring, settings)


async def test_signing_key_rotation_keeps_the_old_key_published_for_the_grace_period(
    app: Starlette, device_client: httpx.AsyncClient, device: PairedDevice, settings: Settings
) -> None:
    grace = timedelta(minutes=5)
    start = clock.now()
    old_access = await access_token(device_client, device)
    old_kid = unverified(old_access)[0]["kid"]

    new_key = await signing_keys.rotate(settings=settings, grace=grace)

    with clock.frozen(start + timedelta(seconds=signing_keys.REFRESH_SECONDS)):
        await refresh_keyring(app, settings)
        published = {k["kid"] for k in (await device_client.get(JWKS)).json()["keys"]}
        assert {old_kid, new_key.id} <= published
        assert (await heartbeat(device_client, old_access)).status_code == 200
        new_access = await access_token(device_client, device)
        assert unverified(new_access)[0]["kid"] == new_key.id
        jwks = (await device_client.get(JWKS)).json()
        jwt.decode(new_access, KeySet.import_key_set(jwks), algorithms=["Ed25519"])
        jwt.decode(old_access, KeySet.import_key_set(jwks), algorithms=["Ed25519"])

    with clock.frozen(start + grace + timedelta(seconds=1)):
        await refresh_keyring(app, settings)
        published = {k["kid"] for k in (await device_client.get(JWKS)).json()["keys"]}
        assert old_kid not in published
        assert new_key.id in published
        # Still within its own lifetime, but signed by a key no longer published.
        assert_problem(await heartbeat(device_client, old_access), 401, "invalid_credentials")
        assert (await heartbeat(device_client, new_access)).status_code == 200


# -- Content rules --------------------------------------------------------------------------

DEVICE_CALLS = [
    pytest.param("POST", TOKEN, False, id="token"),
    pytest.param("POST", ROTATE, False, id="rotate"),
    pytest.param("POST", HEARTBEAT, True, id="heartbeat"),
    pytest.param("PUT", PUSH, True, id="push-token"),
]


@pytest.mark.parametrize(
    ("content", "content_type", "status", "code"),
    [
        pytest.param(
            b"deviceToken=x",
            "application/x-www-form-urlencoded",
            415,
            "unsupported_media_type",
            id="form",
        ),
        pytest.param(
            b'{"appVersion": "2.5.0"}',
            "text/plain",
            415,
            "unsupported_media_type",
            id="json-as-text",
        ),
        pytest.param(
            json.dumps({"pad": "x" * 16 * 1024}).encode(),
            "application/json",
            413,
            "payload_too_large",
            id="over-16-kib",
        ),
        pytest.param(
            b"{not json", "application/json", 400, "validation_error", id="malformed-json"
        ),
    ],
)
@pytest.mark.parametrize(("method", "path", "needs_bearer"), DEVICE_CALLS)
async def test_device_calls_take_small_json_bodies_only(
    device_client: httpx.AsyncClient,
    device: PairedDevice,
    method: str,
    path: str,
    needs_bearer: bool,
    content: bytes,
    content_type: str,
    status: int,
    code: str,
) -> None:
    headers = {"Content-Type": content_type}
    if needs_bearer:
        headers |= bearer(await access_token(device_client, device))

    response = await device_client.request(method, path, content=content, headers=headers)

    assert_problem(response, status, code)
