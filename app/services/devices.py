"""The fleet: list, inspect, deregister (soft delete) and revoke credentials."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from tortoise.expressions import Q, Subquery
from tortoise.query_utils import Prefetch
from tortoise.queryset import QuerySet
from tortoise.transactions import in_transaction

from app import clock
from app.errors import Conflict, NotFound, StaleState
from app.models import AuditAction, Device, DeviceToken, EventType, Kind, User
from app.presence import PresenceStore
from app.services import audit, events
from app.services.pagination import Page, Row, newest_first, newest_first_kept
from app.services.revocations import revoke_all_active, token_entry
from app.services.transitions import fire
from app.settings import Settings
from statemachines import DeviceMachine, DeviceTokenMachine, TokenState

# Up to this many devices heard within the online window, the online list asks the database
# for them by id; with more, a few batches of the fleet's own order already fill a page.
FEW_HEARD = 1000


@dataclass(frozen=True)
class FleetFilter:
    kind: Kind | None = None
    platform: str | None = None
    online: bool | None = None
    q: str | None = None
    include_deregistered: bool = False
    # The active credential expires within `credential_expiry_notice_days`.
    expiring_soon: bool = False
    clone_suspected: bool = False


def expiry_notice_horizon(now: datetime, settings: Settings) -> datetime:
    return now + timedelta(days=settings.credential_expiry_notice_days)


def expiring_soon_condition(now: datetime, settings: Settings) -> Q:
    """Devices whose active credential expires within the notice period (a lapsed one is
    already expired, not expiring)."""
    expiring = DeviceToken.filter(
        state=TokenState.active,
        expires_at__gt=now,
        expires_at__lte=expiry_notice_horizon(now, settings),
    ).values("device_id")
    return Q(id__in=Subquery(expiring))


def active_credential_expiry(device: Device) -> datetime | None:
    """When the device's active credential expires (its tokens fetched), None without one."""
    active = [t.expires_at for t in device.tokens if t.state == TokenState.active]
    return max(active, default=None)


def is_online(device: Device, now: datetime, settings: Settings) -> bool:
    """Derived when read, so it is right even with no worker running."""
    window = timedelta(seconds=settings.heartbeat_online_window_seconds)
    return device.last_seen_at is not None and now - device.last_seen_at < window


async def with_presence(devices: list[Device], presence: PresenceStore) -> list[Device]:
    """Bring `last_seen_at` up to the presence store, which is ahead of the periodic flush."""
    seen = await presence.last_seen(str(d.id) for d in devices)
    for device in devices:
        device.last_seen_at = _later(device.last_seen_at, seen.get(str(device.id)))
    return devices


async def list_devices(
    fleet: FleetFilter,
    *,
    cursor: str | None,
    limit: int,
    settings: Settings,
    presence: PresenceStore,
) -> Page[Device]:
    """One page of the fleet, each device's `last_seen_at` brought up to the presence store
    and its active credentials fetched."""
    query = (
        Device.all()
        .select_related("owner")
        .prefetch_related(Prefetch("tokens", queryset=DeviceToken.filter(state=TokenState.active)))
    )
    if not fleet.include_deregistered:
        query = query.filter(deleted_at=None)
    if fleet.kind:
        query = query.filter(kind=fleet.kind)
    if fleet.platform:
        query = query.filter(platform=fleet.platform)
    if fleet.q:
        query = query.filter(Q(label__icontains=fleet.q) | Q(model__icontains=fleet.q))
    if fleet.expiring_soon:
        query = query.filter(expiring_soon_condition(clock.now(), settings))
    if fleet.clone_suspected:
        query = query.filter(clone_suspected_at__not_isnull=True)
    if fleet.online is None:
        page = await newest_first(query, time_field="registered_at", cursor=cursor, limit=limit)
    else:
        page = await _by_presence(
            query, fleet.online, cursor=cursor, limit=limit, settings=settings, presence=presence
        )
    await with_presence(page.items, presence)
    return page


async def _by_presence(
    query: QuerySet[Device],
    online: bool,
    *,
    cursor: str | None,
    limit: int,
    settings: Settings,
    presence: PresenceStore,
) -> Page[Device]:
    """Online or offline as the listed items will show it: the later of the database's
    last-seen time (flushed periodically, so behind) and the presence store's.

    Never the whole online set shipped into the query: a few heard devices go by id, and
    otherwise the list walks the fleet in its own order, asking the store about each batch.
    """
    now = clock.now()
    since = now - timedelta(seconds=settings.heartbeat_online_window_seconds)
    # `is_online` wants the heartbeat strictly after `since`; the store reads from it.
    cutoff = math.nextafter(since.timestamp(), math.inf)
    if online:
        if await presence.count_seen_since(cutoff) <= FEW_HEARD:
            heard = list(await presence.seen_since(cutoff))
            condition = Q(last_seen_at__gt=since)
            if heard:
                condition |= Q(id__in=heard)
            return await newest_first(
                query.filter(condition), time_field="registered_at", cursor=cursor, limit=limit
            )
    else:
        # Whoever the database calls online is (the later time counts): not a candidate.
        query = query.filter(Q(last_seen_at=None) | Q(last_seen_at__lte=since))

    async def keep(rows: list[Row]) -> set[Any]:
        seen = await presence.last_seen(str(row["id"]) for row in rows)
        chosen = set()
        for row in rows:
            latest = _later(row["last_seen_at"], seen.get(str(row["id"])))
            if (latest is not None and latest > since) == online:
                chosen.add(row["id"])
        return chosen

    return await newest_first_kept(
        query,
        time_field="registered_at",
        cursor=cursor,
        limit=limit,
        keep=keep,
        fields=("last_seen_at",),
    )


def _later(recorded: datetime | None, heard: float | None) -> datetime | None:
    if heard is None:
        return recorded
    latest = clock.from_epoch(heard)
    return latest if recorded is None or latest > recorded else recorded


async def get_device(device_id: UUID) -> Device:
    device = await Device.get_or_none(id=device_id).select_related("owner")
    if device is None:
        raise NotFound("No such device.")
    await device.fetch_related("tokens")
    return device


async def deregister(
    *, device_id: UUID, actor: User, ip: str | None, presence: PresenceStore
) -> Device:
    """Soft delete: the row and its history stay, every credential dies with it."""
    device = await get_device(device_id)
    now = clock.now()
    who = audit.Actor.user(actor.id, ip)
    try:
        async with in_transaction() as connection:
            await fire(
                device,
                DeviceMachine,
                "deregister",
                changes={"deleted_at": now},
                using_db=connection,
                entry=audit.Entry(
                    action=AuditAction.DEVICE_DEREGISTERED,
                    actor=who,
                    target_type="device",
                    target_id=str(device.id),
                    metadata={"deviceId": str(device.id), "label": device.label},
                ),
            )
            revoked = await revoke_all_active(
                device.id, now=now, using_db=connection, audited_as=(who, "deregistered")
            )
            await events.emit(
                EventType.DEVICE_DEREGISTERED,
                {
                    "deviceId": str(device.id),
                    "label": device.label,
                    "kind": device.kind.value,
                    "platform": device.platform,
                    "revokedTokenIds": [str(t.id) for t in revoked],
                    "byUserId": str(actor.id),
                    "atIso": events.iso(now),
                },
                using_db=connection,
            )
    except StaleState:
        raise Conflict("The device is already deregistered.") from None
    await presence.publish_revocations(str(token.id) for token in revoked)
    return device


async def revoke_token(
    *, device_id: UUID, token_id: UUID, actor: User, ip: str | None, presence: PresenceStore
) -> DeviceToken:
    device = await get_device(device_id)
    token = next((t for t in device.tokens if t.id == token_id), None)
    if token is None:
        raise NotFound("No such credential on this device.")
    now = clock.now()
    try:
        async with in_transaction() as connection:
            await fire(
                token,
                DeviceTokenMachine,
                "revoke",
                changes={"ended_at": now},
                entry=token_entry(
                    AuditAction.DEVICE_TOKEN_REVOKED,
                    token,
                    audit.Actor.user(actor.id, ip),
                    reason="admin",
                ),
                using_db=connection,
            )
            await events.emit(
                EventType.DEVICE_TOKEN_REVOKED,
                {
                    "deviceId": str(device.id),
                    "label": device.label,
                    "tokenId": str(token.id),
                    "reason": "admin",
                    "byUserId": str(actor.id),
                    "atIso": events.iso(now),
                },
                using_db=connection,
            )
    except StaleState:
        raise Conflict(f"The credential is already {token.state}.") from None
    await presence.publish_revocations([str(token.id)])
    return token
