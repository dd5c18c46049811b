"""The hourly cleanup of admin-app rows (DESIGN §9): dead codes and stale connections go,
the audit log stays."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from app import clock
from app.edge.runtime import runtime
from app.models import AuditEvent, Device, DeviceToken, PairingSession, User
from app.models.user import Role
from app.services.retention import cleanup as retention_cleanup
from app.settings import Settings
from simulator.admin import AdminAppTokens
from tests.admin_phone import (
    APP_DEVICES,
    cancel_from_console,
    connect,
    exchange,
    generate,
    refresh,
    tokens,
)
from tests.factories import make_user, sign_in
from tests.wire import assert_problem


@pytest.fixture
def retention(app: Starlette) -> Settings:
    """Connections unused for 10 days are stale."""
    return runtime(app).settings.model_copy(update={"app_device_retention_days": 10})


async def cleanup(settings: Settings) -> int:
    """How many admin-app records the retention cleanup deleted."""
    deleted = await retention_cleanup(now=clock.now(), settings=settings)
    return deleted.app_devices + deleted.refresh_tokens + deleted.qr_codes


@dataclass(frozen=True)
class Connections:
    admin: User
    in_use: AdminAppTokens
    revoked: AdminAppTokens
    idle: AdminAppTokens
    dead_qr: dict[str, Any]  # shown and never scanned


@pytest.fixture
async def connections(client: httpx.AsyncClient, device_client: httpx.AsyncClient) -> Connections:
    """Three phones connected, one of them revoked; one QR code unused, one cancelled."""
    user = await make_user(Role.ADMIN)
    admin = await sign_in(client, user)
    in_use = await connect(admin, device_client, deviceName="In use")
    revoked = await connect(admin, device_client, deviceName="Revoked")
    idle = await connect(admin, device_client, deviceName="Idle")
    await client.delete(f"{APP_DEVICES}/{revoked.device_id}", headers=admin.write_headers())
    dead_qr = await generate(admin)
    await cancel_from_console(admin)
    return Connections(user, in_use, revoked, idle, dead_qr)


@dataclass(frozen=True)
class Aged:
    connections: Connections
    live_qr: dict[str, Any]
    audit_rows: int
    deleted: int


@pytest.fixture
async def eleven_days_later(
    client: httpx.AsyncClient,
    device_client: httpx.AsyncClient,
    connections: Connections,
    retention: Settings,
) -> Aged:
    """Eleven days on, the admin is back with a new QR code; only one phone is still in use."""
    clock.advance(timedelta(days=11))
    admin = await sign_in(client, connections.admin)
    live_qr = await generate(admin)
    in_use = await refresh(device_client, connections.in_use.refresh_token)
    assert in_use.status_code == 200
    audit_rows = await AuditEvent.all().count()
    return Aged(connections, live_qr, audit_rows, await cleanup(retention))


async def test_cleanup_deletes_nothing_within_the_retention_period(
    connections: Connections, retention: Settings
) -> None:
    assert await cleanup(retention) == 0


async def test_cleanup_deletes_stale_connections_and_dead_codes(eleven_days_later: Aged) -> None:
    # Two connections (revoked and idle), their two used QR codes, and the two dead codes.
    assert eleven_days_later.deleted == 6


async def test_cleanup_run_again_deletes_nothing(
    eleven_days_later: Aged, retention: Settings
) -> None:
    assert await cleanup(retention) == 0


async def test_cleanup_keeps_the_connection_in_use_only(eleven_days_later: Aged) -> None:
    kept, gone = eleven_days_later.connections.in_use, eleven_days_later.connections

    remaining = await Device.filter(kind="admin_app").values_list("id", flat=True)

    assert [str(d) for d in remaining] == [kept.device_id]
    ended = [gone.revoked.device_id, gone.idle.device_id]
    assert not await DeviceToken.filter(device_id__in=ended).exists()


async def test_cleanup_keeps_the_live_code_and_the_kept_connections_code(
    device_client: httpx.AsyncClient, eleven_days_later: Aged
) -> None:
    sessions = await PairingSession.filter(kind="admin_app").values_list("state", flat=True)

    assert sorted(map(str, sessions)) == ["minted", "redeemed"]
    live = eleven_days_later.live_qr["payload"]["token"]
    assert (await exchange(device_client, live)).status_code == 200


async def test_a_code_deleted_by_cleanup_is_an_invalid_code(
    device_client: httpx.AsyncClient, eleven_days_later: Aged
) -> None:
    dead = eleven_days_later.connections.dead_qr["payload"]["token"]

    assert_problem(await exchange(device_client, dead), 400, "invalid_code")


async def test_cleanup_keeps_the_audit_log(eleven_days_later: Aged) -> None:
    assert await AuditEvent.all().count() == eleven_days_later.audit_rows
    assert await AuditEvent.filter(action="app.device.connected").count() == 3
    assert await AuditEvent.filter(action="app.device.revoked").count() == 1


# -- spent refresh tokens ------------------------------------------------------------------


@dataclass(frozen=True)
class Refreshed:
    first: AdminAppTokens
    current: AdminAppTokens


@pytest.fixture
def app_settings(app: Starlette) -> Settings:
    return runtime(app).settings


@pytest.fixture
async def refreshed_late_in_its_life(
    device_client: httpx.AsyncClient, phone: AdminAppTokens, app_settings: Settings
) -> Refreshed:
    """A day before its first refresh token would expire, the phone traded it."""
    clock.advance(timedelta(days=app_settings.app_refresh_token_ttl_days - 1))
    current = tokens(await refresh(device_client, phone.refresh_token))
    return Refreshed(phone, current)


async def test_cleanup_keeps_a_spent_refresh_token_while_it_could_still_be_replayed(
    refreshed_late_in_its_life: Refreshed, app_settings: Settings
) -> None:
    assert await cleanup(app_settings) == 0


@dataclass(frozen=True)
class CleanedUp:
    refreshed: Refreshed
    deleted: int


@pytest.fixture
async def two_days_on_cleaned_up(
    refreshed_late_in_its_life: Refreshed, app_settings: Settings
) -> CleanedUp:
    """Two days on, past the first refresh token's lifetime, the cleanup ran."""
    clock.advance(timedelta(days=2))
    return CleanedUp(refreshed_late_in_its_life, await cleanup(app_settings))


async def test_cleanup_deletes_a_spent_refresh_token_once_past_its_lifetime(
    two_days_on_cleaned_up: CleanedUp,
) -> None:
    # The first refresh token is past its lifetime: even a replay of it could not be used.
    assert two_days_on_cleaned_up.deleted == 1


async def test_the_refresh_chain_goes_on_after_a_cleanup(
    device_client: httpx.AsyncClient, two_days_on_cleaned_up: CleanedUp, app_settings: Settings
) -> None:
    current = two_days_on_cleaned_up.refreshed.current
    await refresh(device_client, current.refresh_token)

    assert await cleanup(app_settings) == 0
    phone_id = current.device_id
    states = await DeviceToken.filter(device_id=phone_id).values_list("state", flat=True)
    assert sorted(map(str, states)) == ["active", "rotated"]


async def test_a_cleaned_up_refresh_token_is_unknown_not_a_replay(
    device_client: httpx.AsyncClient, two_days_on_cleaned_up: CleanedUp
) -> None:
    first = two_days_on_cleaned_up.refreshed.first

    refused = await refresh(device_client, first.refresh_token)

    assert_problem(refused, 401, "invalid_credentials")
    assert (await Device.get(id=first.device_id)).state == "active"
