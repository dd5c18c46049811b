"""The background jobs, run as the scheduler runs them, against the app's own stores."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
from starlette.applications import Starlette

from app import clock, jobs
from app.edge.runtime import runtime
from app.models import (
    AuditEvent,
    ConsoleSession,
    Device,
    OutboxEvent,
    PairingSession,
    WebhookDelivery,
    WebhookEndpoint,
)
from app.models.user import Role
from app.settings import Settings
from simulator.protocol import DeviceApi
from tests.factories import make_user, mint_code, pair_scanner, sign_in
from tests.scanner import heartbeat


def _context(app: Starlette) -> jobs.JobContext:
    return jobs.JobContext(settings=runtime(app).settings, store=runtime(app).presence)


async def test_expire_job_catches_overdue_codes_up_once(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    admin = await sign_in(client, await make_user(Role.ADMIN))
    overdue = await mint_code(client, admin.csrf_token)
    clock.advance(timedelta(seconds=61))
    fresh = await mint_code(client, admin.csrf_token)

    # Two workers on the same tick: each row is expired by exactly one of them.
    counts = await asyncio.gather(
        jobs.expire_pairing_sessions(_context(app)), jobs.expire_pairing_sessions(_context(app))
    )

    assert sum(counts) == 1
    assert (await PairingSession.get(id=overdue["pairingSessionId"])).state == "expired"
    assert (await PairingSession.get(id=fresh["pairingSessionId"])).state == "minted"
    assert await AuditEvent.filter(action="pairing.expired").count() == 1
    assert await jobs.expire_pairing_sessions(_context(app)) == 0


async def test_flush_writes_heartbeat_times_to_the_database_once(
    app: Starlette, client: httpx.AsyncClient, device_client: httpx.AsyncClient
) -> None:
    admin = await sign_in(client, await make_user(Role.ADMIN))
    device = await pair_scanner(admin, device_client)
    token = (await DeviceApi(device_client).access_token(device)).token
    assert (await heartbeat(device_client, token)).status_code == 200
    # The store is ahead of the database until the flush, and the API already says online.
    assert (await Device.get(id=device.device_id)).last_seen_at is None
    listed = (await client.get(f"/api/v1/admin/devices/{device.device_id}")).json()
    assert listed["online"] is True
    await asyncio.sleep(0.15)  # the Redis store batches writes every ~100 ms

    assert await jobs.flush_last_seen(_context(app)) == 1
    assert await jobs.flush_last_seen(_context(app)) == 0
    stored = (await Device.get(id=device.device_id)).last_seen_at
    assert stored is not None
    assert abs((clock.now() - stored).total_seconds()) < 5


async def test_sweep_records_online_and_offline_transitions(
    app: Starlette, client: httpx.AsyncClient, device_client: httpx.AsyncClient
) -> None:
    settings: Settings = runtime(app).settings
    admin = await sign_in(client, await make_user(Role.ADMIN))
    device = await pair_scanner(admin, device_client)
    token = (await DeviceApi(device_client).access_token(device)).token
    await heartbeat(device_client, token)
    await asyncio.sleep(0.15)

    assert await jobs.sweep_presence(_context(app)) == 1
    assert await jobs.sweep_presence(_context(app)) == 0

    clock.advance(timedelta(seconds=settings.heartbeat_online_window_seconds + 1))
    counts = await asyncio.gather(
        jobs.sweep_presence(_context(app)), jobs.sweep_presence(_context(app))
    )
    assert sum(counts) == 1

    detail = (await client.get(f"/api/v1/admin/devices/{device.device_id}")).json()
    assert detail["online"] is False
    assert [c["online"] for c in detail["presenceChanges"]] == [False, True]
    # Presence comes and goes without touching the audit log.
    assert await AuditEvent.filter(action__startswith="device.online").count() == 0


async def test_cleanup_forgets_old_console_sessions_and_keeps_the_audit_log(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    settings: Settings = runtime(app).settings
    admin = await sign_in(client, await make_user(Role.ADMIN))
    await client.post("/api/v1/auth/logout", headers=admin.write_headers())
    audit_rows = await AuditEvent.all().count()
    assert await jobs.cleanup(_context(app)) == 0

    clock.advance(timedelta(days=settings.session_retention_days + 1))

    assert await jobs.cleanup(_context(app)) == 1
    assert await ConsoleSession.all().count() == 0
    assert await AuditEvent.all().count() == audit_rows


async def test_cleanup_also_deletes_expired_admin_app_qr_codes(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    settings: Settings = runtime(app).settings
    admin = await sign_in(client, await make_user(Role.ADMIN))
    generated = await client.post("/api/v1/admin/app/generate-qr", headers=admin.write_headers())
    assert generated.status_code == 201, generated.text
    assert await jobs.cleanup(_context(app)) == 0

    clock.advance(timedelta(seconds=settings.app_qr_ttl_seconds + 1))

    assert await jobs.cleanup(_context(app)) == 1
    assert not await PairingSession.filter(kind="admin_app").exists()
    assert await AuditEvent.filter(action="app.qr.generated").count() == 1


async def test_cleanup_deletes_settled_webhook_events_with_their_log_and_keeps_pending_ones(
    app: Starlette,
) -> None:
    now = clock.now()
    endpoint = await WebhookEndpoint.create(
        url="https://hooks.example.com/polaris", events=["*"], sealed_secret="-", created_at=now
    )
    settled = await OutboxEvent.create(
        type="device.online", data={}, occurred_at=now, dispatched_at=now
    )
    await WebhookDelivery.create(
        endpoint=endpoint, event=settled, attempts=1, delivered_at=now, created_at=now
    )
    pending = await OutboxEvent.create(
        type="device.offline", data={}, occurred_at=now, dispatched_at=now
    )
    await WebhookDelivery.create(
        endpoint=endpoint,
        event=pending,
        attempts=3,
        next_attempt_at=now + timedelta(hours=5),
        created_at=now,
    )
    clock.advance(timedelta(days=runtime(app).settings.webhook_retention_days + 1))

    await jobs.cleanup(_context(app))

    assert await OutboxEvent.filter(id=settled.id).count() == 0
    assert await WebhookDelivery.filter(event_id=settled.id).count() == 0
    assert await OutboxEvent.filter(id=pending.id).count() == 1
    assert await WebhookDelivery.filter(event_id=pending.id).count() == 1
