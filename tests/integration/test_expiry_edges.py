"""Every lifetime ends at its deadline (issue 13, "Expiry edges"): accepted 0.1 s before it,
refused 0.1 s after, over the public API, with no background job running (the test settings
turn the embedded scheduler off) and the clock frozen at each instant.

Two kinds of deadline. Rows (pairing sessions, credentials, refresh tokens) store theirs to
the microsecond: minted at S with a TTL of t, they are accepted at S + t - 0.1 and refused at
S + t + 0.1. A JWT's `exp` is a whole second T, and the server judges it at `int(now)` with
`exp <= now` meaning expired: at T - 0.1 it sees T - 1 (accepted), at T + 0.1 it sees T
(refused). So a token whose `exp` is T is accepted at T - 0.1 and refused at T + 0.1, which is
what the token rows test, with T read from the token itself.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
import pytest
from starlette.applications import Starlette

from app import clock
from app.auth.jwt import Keyring
from app.edge.runtime import runtime
from app.settings import Settings
from simulator.admin import DEVICES, PAIRING_SESSIONS
from simulator.protocol import POLL, REGISTER, ROTATE, TOKEN, DeviceApi, PkcePair
from tests.admin_phone import connect, exchange, generate, refresh
from tests.factories import SignedInClient, mint_code, pair_scanner
from tests.scanner import bearer, heartbeat, poll_body, scan_body, typed_body
from tests.wire import assert_problem, unverified

pytestmark = pytest.mark.usefixtures("presence_tasks_end_before_shutdown")

EDGE = timedelta(seconds=0.1)
Attempt = Callable[[], Awaitable[httpx.Response]]


@dataclass(frozen=True)
class World:
    admin: SignedInClient
    # The scanner, or the admin's phone: a client without the console's cookies.
    device: httpx.AsyncClient
    settings: Settings


@dataclass(frozen=True)
class Trial:
    """A thing with a lifetime, and the request that uses it."""

    deadline: datetime
    attempt: Attempt


@dataclass(frozen=True)
class Lifetime:
    begin: Callable[[World], Awaitable[Trial]]
    accepted: int
    refused: tuple[int, str]


@pytest.fixture
def world(app: Starlette, admin: SignedInClient, device_client: httpx.AsyncClient) -> World:
    return World(admin, device_client, runtime(app).settings)


def _from_now(**delta: float) -> datetime:
    return clock.now() + timedelta(**delta)


def _exp(token: str) -> datetime:
    return clock.from_epoch(unverified(token)[1]["exp"])


def _decide(world: World, session_id: str, decision: str) -> Attempt:
    path = f"{PAIRING_SESSIONS}/{session_id}"
    headers = world.admin.write_headers()
    if decision == "cancel":
        return lambda: world.admin.client.delete(path, headers=headers)
    return lambda: world.admin.client.post(f"{path}/{decision}", json={}, headers=headers)


async def _claimed(world: World, pkce: PkcePair | None = None) -> dict[str, str]:
    """A code minted now and typed at once: the session waits for the admin."""
    minted = await mint_code(world.admin.client, world.admin.csrf_token)
    claim = await world.device.post(REGISTER, json=typed_body(minted["code"], pkce=pkce))
    assert claim.status_code == 202, claim.text
    return {**minted, "pairingId": claim.json()["pairingId"]}


async def scanned_code(world: World) -> Trial:
    minted = await mint_code(world.admin.client, world.admin.csrf_token)
    return Trial(
        _from_now(seconds=world.settings.pairing_code_ttl_seconds),
        lambda: world.device.post(REGISTER, json=scan_body(minted["pairingUri"])),
    )


async def typed_code(world: World) -> Trial:
    minted = await mint_code(world.admin.client, world.admin.csrf_token)
    return Trial(
        _from_now(seconds=world.settings.pairing_code_ttl_seconds),
        lambda: world.device.post(REGISTER, json=typed_body(minted["code"])),
    )


async def approval_collection(world: World) -> Trial:
    """The approved device collects within one code TTL of the approval, not of the mint."""
    pkce = PkcePair.generate()
    claimed = await _claimed(world, pkce)
    clock.advance(timedelta(seconds=1))
    approved = await _decide(world, claimed["pairingSessionId"], "approve")()
    assert approved.status_code == 200, approved.text
    return Trial(
        _from_now(seconds=world.settings.pairing_code_ttl_seconds),
        lambda: world.device.post(POLL, json=poll_body(claimed["pairingId"], pkce)),
    )


def decision(name: str) -> Callable[[World], Awaitable[Trial]]:
    """An admin's decision on a typed code: approve and reject wait on a claimed session,
    cancel on a minted one (DESIGN §3)."""

    async def begin(world: World) -> Trial:
        if name == "cancel":
            session = await mint_code(world.admin.client, world.admin.csrf_token)
        else:
            session = await _claimed(world)
        return Trial(
            _from_now(seconds=world.settings.pairing_code_ttl_seconds),
            _decide(world, session["pairingSessionId"], name),
        )

    return begin


async def admin_app_qr_token(world: World) -> Trial:
    qr = await generate(world.admin)
    return Trial(
        _from_now(seconds=world.settings.app_qr_ttl_seconds),
        lambda: exchange(world.device, qr["payload"]["token"]),
    )


def device_access_token(*, verified_before: bool) -> Callable[[World], Awaitable[Trial]]:
    """Verified before: the heartbeat fast path knows the token from its cache. Not: the
    route verifies it for the first time."""

    async def begin(world: World) -> Trial:
        credentials = await pair_scanner(world.admin, world.device)
        token = (await DeviceApi(world.device).access_token(credentials)).token
        claims = unverified(token)[1]
        assert claims["exp"] == claims["iat"] + world.settings.access_token_lifetime_seconds
        if verified_before:
            assert (await heartbeat(world.device, token)).status_code == 200
        return Trial(_exp(token), lambda: heartbeat(world.device, token))

    return begin


def admin_app_access_token(*, verified_before: bool) -> Callable[[World], Awaitable[Trial]]:
    async def begin(world: World) -> Trial:
        phone = await connect(world.admin, world.device)

        async def use() -> httpx.Response:
            return await world.device.get(DEVICES, headers=bearer(phone.access_token))

        if verified_before:
            assert (await use()).status_code == 200
        return Trial(_exp(phone.access_token), use)

    return begin


async def admin_app_refresh_token(world: World) -> Trial:
    phone = await connect(world.admin, world.device)
    return Trial(
        _from_now(days=world.settings.app_refresh_token_ttl_days),
        lambda: refresh(world.device, phone.refresh_token),
    )


def device_credentials(path: str) -> Callable[[World], Awaitable[Trial]]:
    async def begin(world: World) -> Trial:
        credentials = await pair_scanner(world.admin, world.device)
        return Trial(
            _from_now(days=world.settings.device_credential_ttl_days),
            lambda: world.device.post(path, json=credentials.wire()),
        )

    return begin


CODE_EXPIRED = (410, "code_expired")
TOKEN_EXPIRED = (401, "token_expired")
LIFETIMES = [
    pytest.param(Lifetime(scanned_code, 201, CODE_EXPIRED), id="scanner-code-qr"),
    pytest.param(Lifetime(typed_code, 202, CODE_EXPIRED), id="scanner-code-typed"),
    pytest.param(
        Lifetime(approval_collection, 201, (410, "expired_token")), id="approval-collection"
    ),
    pytest.param(Lifetime(decision("approve"), 200, CODE_EXPIRED), id="admin-approves"),
    pytest.param(Lifetime(decision("reject"), 200, CODE_EXPIRED), id="admin-rejects"),
    pytest.param(Lifetime(decision("cancel"), 204, CODE_EXPIRED), id="admin-cancels"),
    pytest.param(Lifetime(admin_app_qr_token, 200, CODE_EXPIRED), id="admin-app-qr-token"),
    pytest.param(
        Lifetime(device_access_token(verified_before=False), 200, TOKEN_EXPIRED),
        id="device-access-token-route",
    ),
    pytest.param(
        Lifetime(device_access_token(verified_before=True), 200, TOKEN_EXPIRED),
        id="device-access-token-fast-path",
    ),
    pytest.param(
        Lifetime(admin_app_access_token(verified_before=False), 200, TOKEN_EXPIRED),
        id="admin-app-access-token",
    ),
    pytest.param(
        Lifetime(admin_app_access_token(verified_before=True), 200, TOKEN_EXPIRED),
        id="admin-app-access-token-cached",
    ),
    pytest.param(
        Lifetime(admin_app_refresh_token, 200, TOKEN_EXPIRED), id="admin-app-refresh-token"
    ),
    pytest.param(
        Lifetime(device_credentials(TOKEN), 200, TOKEN_EXPIRED), id="device-credentials-exchange"
    ),
    pytest.param(
        Lifetime(device_credentials(ROTATE), 200, TOKEN_EXPIRED), id="device-credentials-rotation"
    ),
]


@pytest.mark.parametrize("offset", [-EDGE, EDGE], ids=["0.1s-before", "0.1s-after"])
@pytest.mark.parametrize("lifetime", LIFETIMES)
async def test_a_lifetime_is_accepted_until_its_deadline_and_refused_after(
    world: World, lifetime: Lifetime, offset: timedelta
) -> None:
    with clock.frozen():
        trial = await lifetime.begin(world)
    with clock.frozen(trial.deadline + offset):
        answer = await trial.attempt()

    if offset < timedelta():
        assert answer.status_code == lifetime.accepted, answer.text
    else:
        assert_problem(answer, *lifetime.refused)


class SignatureChecks:
    """Counts the signatures `Keyring.verify` checks: a token it has accepted before is
    judged from the claims it remembers (expiry included), its signature never again."""

    def __init__(self, keyring: Keyring) -> None:
        self.count = 0
        self._check = keyring._verify_signature

    def __call__(self, raw: str, *, token_type: str, audience: str, now: int) -> object:
        self.count += 1
        return self._check(raw, token_type=token_type, audience=audience, now=now)


async def test_the_fast_path_serves_a_cached_token_to_its_last_tenth_second_and_not_after(
    app: Starlette, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    with clock.frozen():
        begun = await device_access_token(verified_before=True)(world)
    keyring = runtime(app).keyring
    checks = SignatureChecks(keyring)
    monkeypatch.setattr(keyring, "_verify_signature", checks)

    with clock.frozen(begun.deadline - EDGE):
        assert (await begun.attempt()).status_code == 200
    with clock.frozen(begun.deadline + EDGE):
        assert_problem(await begun.attempt(), 401, "token_expired")
    assert checks.count == 0, "both judged from the remembered claims"
