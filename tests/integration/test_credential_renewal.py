"""Credential renewal: heartbeats say when the pair expires and when to rotate it (the route
and the fast path byte for byte), and the daily job sends `device.token.expiring` once."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from starlette.applications import Starlette
from starlette.types import Message, Receive, Scope, Send

from app import clock, jobs
from app.api.heartbeat_fast_path import HeartbeatFastPath
from app.auth.jwt import DEVICE_AUDIENCE, DEVICE_TOKEN_TYPE
from app.edge.runtime import runtime
from app.models import AuditEvent, DeviceToken, OutboxEvent
from app.settings import Settings
from simulator.admin import AdminAppTokens
from simulator.protocol import Credentials, DeviceApi, DeviceSession
from tests.factories import PairScanner, SignedInClient
from tests.scanner import DOCK_SCANNER, bearer
from tests.wire import iso

HEARTBEAT = "/api/devices/heartbeat"
EXPIRING = "device.token.expiring"


def an_instant() -> datetime:
    """A moment just ahead of the real clock, with microseconds, for a frozen clock."""
    return (clock.now() + timedelta(seconds=1)).replace(microsecond=123456)


async def fast_path_answer(app: Starlette, token: str) -> tuple[int, bytes]:
    """One heartbeat straight into the fast path; it fails if the ordinary stack is asked."""

    async def below(_scope: Scope, _receive: Receive, _send: Send) -> None:
        raise AssertionError("the fast path handed the heartbeat to the ordinary stack")

    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": HEARTBEAT,
        "root_path": "",
        "query_string": b"",
        "headers": [(b"authorization", f"Bearer {token}".encode()), (b"content-length", b"0")],
        "app": app,
    }
    await HeartbeatFastPath(below, settings=runtime(app).settings)(scope, receive, send)
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


async def routed_then_fast(
    app: Starlette, device_client: httpx.AsyncClient, token: str
) -> tuple[httpx.Response, bytes]:
    """The route's answer to a token's first heartbeat, and the fast path's to its next."""
    routed = await device_client.post(HEARTBEAT, headers=bearer(token))
    assert routed.status_code == 200, routed.text
    status, fast = await fast_path_answer(app, token)
    assert status == 200
    # And the app's own fast path, which keeps the answers it rendered, per credential pair.
    again = await device_client.post(HEARTBEAT, headers=bearer(token))
    assert again.content == fast
    return routed, fast


async def test_the_heartbeat_says_when_the_credentials_expire_and_when_to_rotate(
    app: Starlette,
    admin: SignedInClient,
    device_client: httpx.AsyncClient,
    pair: PairScanner,
    settings: Settings,
) -> None:
    issued_at = an_instant()
    with clock.frozen(issued_at):
        device = await pair()
        token = (await DeviceApi(device_client).access_token(device)).token
        routed, fast = await routed_then_fast(app, device_client, token)
        shown = (await admin.api.device(device.device_id))["tokens"][0]

    lifetime = timedelta(days=settings.device_credential_ttl_days)
    assert routed.content == fast
    assert routed.json() == {
        "nextHeartbeatInSeconds": settings.heartbeat_interval_seconds,
        "credentialsExpireAtIso": iso(issued_at + lifetime),
        # Two thirds of 90 days.
        "rotateAfterIso": iso(issued_at + timedelta(days=60)),
    }
    assert routed.json()["credentialsExpireAtIso"] == shown["expiresAtIso"]
    assert device.expires_at_iso == shown["expiresAtIso"]


@pytest.mark.parametrize(
    "settings",
    [{"device_credential_ttl_days": 30, "credential_rotate_after": 0.5}],
    indirect=True,
)
async def test_after_a_rotation_the_heartbeat_speaks_of_the_new_pair(
    app: Starlette, device_client: httpx.AsyncClient, pair: PairScanner
) -> None:
    device_api = DeviceApi(device_client)
    paired_at = an_instant()
    with clock.frozen(paired_at):
        device = await pair()
        first = (await device_api.access_token(device)).token
        before, _ = await routed_then_fast(app, device_client, first)
    assert before.json()["rotateAfterIso"] == iso(paired_at + timedelta(days=15))
    rotated_at = paired_at + timedelta(days=3, hours=5)
    with clock.frozen(rotated_at):
        renewed = await device_api.rotate(device)
        token = (await device_api.access_token(renewed)).token
        routed, fast = await routed_then_fast(app, device_client, token)
        answer = await device_api.heartbeat_answer(token)

    assert routed.content == fast
    assert routed.json()["credentialsExpireAtIso"] == iso(rotated_at + timedelta(days=30))
    assert routed.json()["rotateAfterIso"] == iso(rotated_at + timedelta(days=15))
    assert renewed.expires_at_iso == routed.json()["credentialsExpireAtIso"]
    # The simulator reads the same instants off the wire.
    assert answer.rotate_after == rotated_at + timedelta(days=15)
    assert answer.credentials_expire_at == rotated_at + timedelta(days=30)


async def test_a_token_without_the_window_is_answered_by_the_route_from_the_database(
    app: Starlette,
    admin: SignedInClient,
    device_client: httpx.AsyncClient,
    device: Credentials,
) -> None:
    """An access token signed before tokens carried the credentials' window: the fast path
    leaves it to the route, which reads the pair and answers the same fields."""
    shown = (await admin.api.device(device.device_id))["tokens"][0]
    state = runtime(app)
    token, _ = state.keyring.sign(
        token_type=DEVICE_TOKEN_TYPE,
        audience=DEVICE_AUDIENCE,
        subject=device.device_id,
        token_id=shown["tokenId"],
        scope=("scan", "push"),
        issued_at=int(clock.now().timestamp()),
        lifetime=600,
    )
    current = (await DeviceApi(device_client).access_token(device)).token
    with_window = (await device_client.post(HEARTBEAT, headers=bearer(current))).json()

    for _ in range(2):
        answer = await device_client.post(HEARTBEAT, headers=bearer(token))
        assert answer.status_code == 200, answer.text
        assert answer.json() == with_window
    assert answer.json()["credentialsExpireAtIso"] == shown["expiresAtIso"]
    with pytest.raises(AssertionError, match="ordinary stack"):
        await fast_path_answer(app, token)


async def test_a_simulated_device_keeps_its_pair_until_rotate_after(
    device_api: DeviceApi, device: Credentials
) -> None:
    session = DeviceSession(device_api, device)

    await session.heartbeat()

    assert session.rotations == 0
    assert session.credentials == device
    assert session.rotate_after is not None
    assert session.rotate_after > datetime.now(UTC) + timedelta(days=59)
    assert not session.rotation_due()
    assert session.rotation_due(now=session.rotate_after)


# -- the daily notice ------------------------------------------------------------------------


def job_context(app: Starlette) -> jobs.JobContext:
    state = runtime(app)
    return jobs.JobContext(settings=state.settings, store=state.presence)


async def active_token_id(device_id: str) -> str:
    token = await DeviceToken.get(device_id=device_id, state="active")
    return str(token.id)


async def notices() -> list[OutboxEvent]:
    return await OutboxEvent.filter(type=EXPIRING).order_by("occurred_at")


async def audited_token_ids() -> list[str]:
    rows = await AuditEvent.filter(action=EXPIRING).order_by("at")
    return [str(row.metadata["tokenId"]) for row in rows]


@pytest.mark.parametrize(
    "settings",
    [{"device_credential_ttl_days": 20, "app_refresh_token_ttl_days": 20}],
    indirect=True,
)
async def test_the_job_notifies_each_expiring_scanner_pair_once(
    app: Starlette,
    admin: SignedInClient,
    device_api: DeviceApi,
    pair: PairScanner,
    phone: AdminAppTokens,
) -> None:
    """Within the 14-day notice: an active pair is notified once; a revoked, a rotated-out
    and an admin-app credential never are, nor a fresh pair until its own time comes."""
    started = an_instant()
    with clock.frozen(started):
        expiring, revoked, rotated = await pair(), await pair(), await pair()
        expiring_id = await active_token_id(expiring.device_id)
        await admin.api.revoke_token(revoked.device_id, await active_token_id(revoked.device_id))
    with clock.frozen(started + timedelta(days=5)):
        renewed = await device_api.rotate(rotated)
        renewed_id = await active_token_id(rotated.device_id)

    at = started + timedelta(days=10)
    with clock.frozen(at):
        assert await jobs.notify_expiring_credentials(job_context(app)) == 1
        assert await jobs.notify_expiring_credentials(job_context(app)) == 0

    [notice] = await notices()
    assert notice.data == {
        "deviceId": expiring.device_id,
        "tokenId": expiring_id,
        "label": DOCK_SCANNER.label,
        "platform": DOCK_SCANNER.platform,
        "expiresAtIso": iso(started + timedelta(days=20)),
        "rotateAfterIso": iso(started + timedelta(days=20) * (2 / 3)),
        "atIso": iso(at),
    }
    assert notice.dispatched_at is None
    for secret in (expiring.device_token, expiring.device_secret, phone.refresh_token):
        assert secret not in json.dumps(notice.data)
    assert await audited_token_ids() == [expiring_id]
    row = await DeviceToken.get(id=expiring_id)
    assert row.expiry_notified_at == at

    # The rotated-in pair reaches its own notice period 25 - 14 = 11 days after the start.
    with clock.frozen(started + timedelta(days=12)):
        assert await jobs.notify_expiring_credentials(job_context(app)) == 1
    assert await audited_token_ids() == [expiring_id, renewed_id]
    assert renewed.device_id == rotated.device_id


@pytest.mark.parametrize("settings", [{"device_credential_ttl_days": 20}], indirect=True)
async def test_a_lapsed_pair_gets_no_notice(app: Starlette, pair: PairScanner) -> None:
    """A pair past its expiry is expired, not expiring: there is nothing left to renew."""
    started = an_instant()
    with clock.frozen(started):
        await pair()
    with clock.frozen(started + timedelta(days=20, seconds=1)):
        assert await jobs.notify_expiring_credentials(job_context(app)) == 0
    assert await notices() == []


@pytest.mark.parametrize("settings", [{"device_credential_ttl_days": 20}], indirect=True)
async def test_two_workers_at_once_send_each_notice_once(app: Starlette, pair: PairScanner) -> None:
    started = an_instant()
    with clock.frozen(started):
        devices = [await pair() for _ in range(3)]
    with clock.frozen(started + timedelta(days=10)):
        runs = await asyncio.gather(
            *(jobs.notify_expiring_credentials(job_context(app)) for _ in range(2))
        )

    assert sum(runs) == 3
    expected = sorted([await active_token_id(d.device_id) for d in devices])
    assert sorted(await audited_token_ids()) == expected
    assert sorted(str(n.data["tokenId"]) for n in await notices()) == expected
