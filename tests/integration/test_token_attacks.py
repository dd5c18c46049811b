"""Token attacks (issue 13, DESIGN §8): every forged, foreign, stale or retired JWT is refused
with 401, for device and admin-app tokens alike, on every path that reads one.

One table of attacks, tried on every target of the token's kind. A target that is `warm`
has just accepted the genuine token the forgery was made from, so the verified-token cache
(and, on the heartbeat, the fast path that answers from it) holds the same claims and `jti`
when the forgery arrives: it must still be judged afresh.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
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
from simulator.admin import DEVICES, AdminAppTokens
from simulator.protocol import HEARTBEAT, JWKS, PUSH_TOKEN
from tests.admin_phone import APP_DEVICES
from tests.factories import SignedInClient
from tests.forged_tokens import (
    AttackerKey,
    ed25519,
    hs256,
    public_key_as_secrets,
    server_signing_key,
    unsigned,
)
from tests.scanner import bearer
from tests.wire import assert_problem, unverified

pytestmark = pytest.mark.usefixtures("presence_tasks_end_before_shutdown")

INVALID = "invalid_credentials"
ELSEWHERE = "https://elsewhere.example"
REQUIRED_CLAIMS = ("iss", "aud", "sub", "exp", "tid", "jti")
# Leaves a claim or header parameter out.
GONE: Any = object()


@dataclass(frozen=True)
class Victim:
    """A genuine token of the kind under attack, and what a forger can know or hold."""

    token: str
    header: dict[str, Any]
    claims: dict[str, Any]
    token_type: str
    audience: str
    other_kind: str  # a genuine token of the other kind
    other_type: str
    other_audience: str
    public_jwk: dict[str, Any]  # the key that signed `token`, as the JWKS publishes it
    server_key: Ed25519PrivateKey  # the server's own: insider forgeries test the claims


def _changed(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    merged = {**base, **changes}
    return {k: v for k, v in merged.items() if v is not GONE}


def _by_server(v: Victim, header: dict[str, Any] | None = None, **claims: Any) -> str:
    """Signed with the server's own key, so only the claim and header checks can refuse it."""
    return ed25519(_changed(v.header, header or {}), _changed(v.claims, claims), v.server_key)


def _now() -> int:
    return int(clock.now().timestamp())


def _alg_none(spelling: str) -> Callable[[Victim], str]:
    return lambda v: unsigned({**v.header, "alg": spelling}, v.claims)


def _alg_none_keeping_the_signature(v: Victim) -> str:
    return unsigned({**v.header, "alg": "none"}, v.claims) + v.token.rsplit(".", 1)[1]


def _hs256_keyed_with_public_key(form: str) -> Callable[[Victim], str]:
    return lambda v: hs256(v.header, v.claims, public_key_as_secrets(v.public_jwk)[form])


def _header_supplied_key(parameter: str) -> Callable[[Victim], str]:
    def forge(v: Victim) -> str:
        attacker = AttackerKey()
        return attacker.sign(attacker.header_pointing_here(parameter, v.token_type), v.claims)

    return forge


def _own_key(kid: Callable[[Victim, AttackerKey], str | None]) -> Callable[[Victim], str]:
    def forge(v: Victim) -> str:
        attacker = AttackerKey()
        return attacker.sign(_changed(v.header, {"kid": kid(v, attacker) or GONE}), v.claims)

    return forge


def _without(claim: str) -> Callable[[Victim], str]:
    return lambda v: _by_server(v, **{claim: GONE})


@dataclass(frozen=True)
class Attack:
    forge: Callable[[Victim], str]
    code: str = INVALID


ATTACKS = [
    pytest.param(Attack(_alg_none("none")), id="alg-none"),
    pytest.param(Attack(_alg_none("None")), id="alg-None"),
    pytest.param(Attack(_alg_none("NONE")), id="alg-NONE"),
    pytest.param(Attack(_alg_none_keeping_the_signature), id="alg-none-genuine-signature"),
    *(
        pytest.param(Attack(_hs256_keyed_with_public_key(form)), id=f"hs256-public-key-{form}")
        for form in ("raw", "pem", "jwk-json", "x")
    ),
    pytest.param(Attack(_own_key(lambda v, a: a.kid)), id="unknown-kid-own-key"),
    pytest.param(Attack(lambda v: _by_server(v, {"kid": "k" * 32})), id="unknown-kid-our-key"),
    pytest.param(Attack(_own_key(lambda v, a: v.header["kid"])), id="own-key-under-real-kid"),
    pytest.param(Attack(_own_key(lambda v, a: None)), id="own-key-no-kid"),
    *(
        pytest.param(Attack(_header_supplied_key(p)), id=f"header-supplied-key-{p}")
        for p in ("jwk", "jku", "x5u", "x5c")
    ),
    pytest.param(Attack(lambda v: _by_server(v, aud=v.other_audience)), id="aud-other-kind"),
    pytest.param(Attack(lambda v: _by_server(v, aud=ELSEWHERE)), id="aud-elsewhere"),
    pytest.param(Attack(lambda v: _by_server(v, iss=ELSEWHERE)), id="iss-elsewhere"),
    pytest.param(Attack(lambda v: _by_server(v, iss=v.claims["iss"] + "/")), id="iss-not-exact"),
    pytest.param(Attack(lambda v: _by_server(v, {"typ": v.other_type})), id="typ-other-kind"),
    pytest.param(Attack(lambda v: _by_server(v, {"typ": "JWT"})), id="typ-JWT"),
    pytest.param(Attack(lambda v: _by_server(v, {"typ": GONE})), id="typ-missing"),
    pytest.param(
        Attack(
            lambda v: _by_server(v, iat=_now() - 601, nbf=_now() - 601, exp=_now() - 1),
            "token_expired",
        ),
        id="expired",
    ),
    pytest.param(Attack(lambda v: _by_server(v, nbf=_now() + 300)), id="nbf-in-the-future"),
    pytest.param(Attack(lambda v: _by_server(v, iat=_now() + 300)), id="iat-in-the-future"),
    *(pytest.param(Attack(_without(c)), id=f"missing-{c}") for c in REQUIRED_CLAIMS),
    pytest.param(Attack(lambda v: v.other_kind), id="genuine-token-of-the-other-kind"),
]


@dataclass(frozen=True)
class Target:
    kind: str  # "device" | "admin-app"
    method: str
    path: str
    body: dict[str, str] | None
    warm: bool  # the genuine token was accepted here just before the attack


PUSH_BODY = {"pushToken": "ab" * 32, "apnsEnvironment": "sandbox"}
TARGET_TABLE = {
    "device-heartbeat-fast-path": Target("device", "POST", HEARTBEAT, {}, warm=True),
    "device-heartbeat-first-use": Target("device", "POST", HEARTBEAT, {}, warm=False),
    "device-push-token-route": Target("device", "PUT", PUSH_TOKEN, PUSH_BODY, warm=True),
    "admin-api-after-genuine-use": Target("admin-app", "GET", DEVICES, None, warm=True),
    "admin-api-first-use": Target("admin-app", "GET", DEVICES, None, warm=False),
}
TARGETS = [pytest.param(target, id=name) for name, target in TARGET_TABLE.items()]


async def send(client: httpx.AsyncClient, target: Target, token: str) -> httpx.Response:
    return await client.request(target.method, target.path, json=target.body, headers=bearer(token))


@dataclass(frozen=True)
class Victims:
    app: Starlette
    client: httpx.AsyncClient
    by_kind: dict[str, Victim]

    @property
    def keyring(self) -> Keyring:
        return runtime(self.app).keyring

    def cached(self, token: str, kind: str) -> bool:
        """Whether the fast path would answer `token` without verifying it."""
        token_type = self.by_kind[kind].token_type
        return self.keyring.already_verified(token, token_type=token_type, now=_now()) is not None

    async def warm_up(self, target: Target) -> None:
        """The genuine token accepted on `target`; twice, so a heartbeat's second answer
        comes from the fast path."""
        genuine = self.by_kind[target.kind].token
        for _ in range(2):
            response = await send(self.client, target, genuine)
            assert response.is_success, response.text
        assert self.cached(genuine, target.kind)


@pytest.fixture
async def victims(
    app: Starlette, device_client: httpx.AsyncClient, access_token: str, phone: AdminAppTokens
) -> Victims:
    jwks = {k["kid"]: k for k in (await device_client.get(JWKS)).json()["keys"]}
    # The insider: the key the server signs with (see tests.forged_tokens.server_signing_key).
    server_key = server_signing_key(runtime(app).keyring._signing)

    def victim(
        token: str, other: str, kinds: tuple[str, str], audiences: tuple[str, str]
    ) -> Victim:
        header, claims = unverified(token)
        return Victim(
            token,
            header,
            claims,
            kinds[0],
            audiences[0],
            other,
            kinds[1],
            audiences[1],
            jwks[header["kid"]],
            server_key,
        )

    device = victim(
        access_token,
        phone.access_token,
        (DEVICE_TOKEN_TYPE, ADMIN_TOKEN_TYPE),
        (DEVICE_AUDIENCE, ADMIN_AUDIENCE),
    )
    admin_app = victim(
        phone.access_token,
        access_token,
        (ADMIN_TOKEN_TYPE, DEVICE_TOKEN_TYPE),
        (ADMIN_AUDIENCE, DEVICE_AUDIENCE),
    )
    return Victims(app, device_client, {"device": device, "admin-app": admin_app})


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("attack", ATTACKS)
async def test_forged_and_foreign_tokens_are_refused(
    victims: Victims, attack: Attack, target: Target
) -> None:
    victim = victims.by_kind[target.kind]
    if target.warm:
        await victims.warm_up(target)
    forged = attack.forge(victim)

    assert_problem(await send(victims.client, target, forged), 401, attack.code)
    # Refused again, and never remembered as verified, so the fast path cannot answer it.
    assert_problem(await send(victims.client, target, forged), 401, attack.code)
    assert not victims.cached(forged, target.kind)
    # The genuine token it was made from still works.
    assert (await send(victims.client, target, victim.token)).is_success


GRACE = timedelta(minutes=2)


async def _refresh_keyring(app: Starlette, settings: Settings) -> None:
    """What each server does every `signing_keys.REFRESH_SECONDS`."""
    runtime(app).keyring = await signing_keys.refreshed(runtime(app).keyring, settings)


async def _retire_the_signing_key(app: Starlette, settings: Settings, *, refresh: bool) -> None:
    """`polaris rotate-signing-key` with a short grace, seen by the servers' next keyring
    refresh, then the clock moved past the grace; with `refresh`, a refresh has run since too
    (without, the server has not refreshed yet, or its refresh failed)."""
    await signing_keys.rotate(settings=settings, grace=GRACE)
    clock.advance(timedelta(seconds=signing_keys.REFRESH_SECONDS))
    await _refresh_keyring(app, settings)
    clock.advance(GRACE - timedelta(seconds=signing_keys.REFRESH_SECONDS))
    if refresh:
        await _refresh_keyring(app, settings)


LATER = [
    pytest.param("token_expired", None, id="genuine-token-after-its-expiry"),
    pytest.param(INVALID, False, id="retired-key-after-grace"),
    pytest.param(INVALID, True, id="retired-key-after-grace-and-keyring-refresh"),
]


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize(("code", "refresh"), LATER)
async def test_genuine_tokens_are_refused_once_their_time_or_their_key_is_up(
    victims: Victims, settings: Settings, target: Target, code: str, refresh: bool | None
) -> None:
    victim = victims.by_kind[target.kind]
    with clock.frozen():
        if target.warm:
            await victims.warm_up(target)
        if refresh is None:
            clock.advance(timedelta(seconds=victim.claims["exp"] - _now()))
        else:
            # Both tokens still have minutes to live by their own `exp`.
            await _retire_the_signing_key(victims.app, settings, refresh=refresh)
            assert _now() < victim.claims["exp"]

        assert_problem(await send(victims.client, target, victim.token), 401, code)
        assert not victims.cached(victim.token, target.kind)


REQUESTS_AFTER_REVOKE = 2_000


@pytest.mark.parametrize("kind", ["device", "admin-app"])
async def test_a_revoked_access_token_gets_no_answer_but_token_revoked(
    admin: SignedInClient, victims: Victims, phone: AdminAppTokens, kind: str
) -> None:
    victim = victims.by_kind[kind]
    targets = [t for t in TARGET_TABLE.values() if t.kind == kind and t.warm]
    for target in targets:
        await victims.warm_up(target)
    if kind == "device":
        device_id = victim.claims["sub"]
        await admin.api.revoke_token(device_id, victim.claims["tid"])
    else:
        revoked = await admin.client.delete(
            f"{APP_DEVICES}/{phone.device_id}", headers=admin.write_headers()
        )
        assert revoked.is_success, revoked.text

    answers: collections.Counter[tuple[int, str]] = collections.Counter()
    for i in range(REQUESTS_AFTER_REVOKE):
        response = await send(victims.client, targets[i % len(targets)], victim.token)
        answers[(response.status_code, response.json().get("code", ""))] += 1

    successes = sum(n for (status, _), n in answers.items() if status < 400)
    assert successes == 0, f"{successes} of {REQUESTS_AFTER_REVOKE} succeeded: {dict(answers)}"
    assert answers == {(401, "token_revoked"): REQUESTS_AFTER_REVOKE}, dict(answers)
