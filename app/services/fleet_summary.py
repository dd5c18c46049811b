"""The fleet at a glance: how many scanners, online, waiting for approval, expiring, cloned.

Counted, never listed: the database's figures come from one pass over the listed scanners
(the expiring credentials found through their expiry index), online from the presence
store's own count; no device id crosses the wire but those of the few devices the store
holds and the list does not. Every figure is what the matching filter of the fleet list
returns, except for one online window after the store lost what it held (see `summary`).
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from tortoise.expressions import Q
from tortoise.functions import Count
from tortoise.queryset import QuerySet

from app.models import Device, Kind, PairingSession
from app.presence import PresenceStore
from app.services.devices import expiring_soon_condition
from app.settings import Settings
from statemachines import PairingState

UNLISTED_KINDS = [kind for kind in Kind if kind != Kind.SCANNER]


@dataclass(frozen=True, slots=True)
class FleetSummary:
    total: int
    online: int
    offline: int
    # Typed codes waiting for the minting admin: not devices yet, not in `total`.
    pending_approval: int
    expiring_soon: int
    clone_suspected: int
    at: datetime


def _listed() -> QuerySet[Device]:
    """The scanners the Devices page lists (admin-app connections have their own page)."""
    return Device.filter(kind=Kind.SCANNER, deleted_at=None)


async def summary(*, now: datetime, settings: Settings, presence: PresenceStore) -> FleetSummary:
    window = timedelta(seconds=settings.heartbeat_online_window_seconds)
    since = now - window
    # One pass over the listed scanners for every figure the database holds.
    row_counts = (
        _listed()
        .annotate(
            total=Count("id"),
            recorded_online=Count("id", _filter=Q(last_seen_at__gt=since)),
            clone_suspected=Count("id", _filter=Q(clone_suspected_at__not_isnull=True)),
            expiring_soon=Count("id", _filter=expiring_soon_condition(now, settings)),
        )
        .values("total", "recorded_online", "clone_suspected", "expiring_soon")
    )
    pending = PairingSession.filter(
        kind=Kind.SCANNER, state=PairingState.pending_approval, expires_at__gt=now
    ).count()
    # Independent reads, each on a connection of its own: the page waits for the slowest.
    [counted], heard, pending_approval = await asyncio.gather(
        row_counts, _heard(since, window, presence), pending
    )
    total = int(counted["total"])
    # The database's copy, for when the store knows less (Redis emptied, a restart in
    # embedded mode); otherwise the store is ahead of it and holds every device it does.
    # Until the devices the store lost beat again (one window) the two may each know some
    # the other does not: the larger count is then short of the filter, which asks both.
    online = min(total, max(heard, int(counted["recorded_online"])))
    return FleetSummary(
        total=total,
        online=online,
        offline=total - online,
        pending_approval=pending_approval,
        expiring_soon=int(counted["expiring_soon"]),
        clone_suspected=int(counted["clone_suspected"]),
        at=now,
    )


async def _heard(since: datetime, window: timedelta, presence: PresenceStore) -> int:
    """Listed scanners the presence store heard from after `since`, as `devices.is_online`
    judges."""
    # `is_online` wants the heartbeat strictly after `since`; the store counts from it.
    cutoff = math.nextafter(since.timestamp(), math.inf)
    heard = await presence.count_seen_since(cutoff)
    # The store also holds admin-app phones and devices deregistered a moment ago (a
    # deregistered device is refused from then on, so its last heartbeat is not much later).
    # Both are few, and found through indexes: take them back out by id.
    unlisted = await Device.filter(
        Q(kind__in=UNLISTED_KINDS, deleted_at=None) | Q(deleted_at__gt=since - window)
    ).values_list("id", flat=True)
    if unlisted:
        seen = await presence.last_seen(str(device_id) for device_id in unlisted)
        heard -= sum(1 for at in seen.values() if at >= cutoff)
    return heard
