"""The fleet at a glance: how many scanners, online, waiting for approval, expiring, cloned.

Counted, never listed: each figure is one SQL `COUNT` or the presence store's own count, so
the Devices page and `GET /api/v1/admin/fleet/summary` cost the same at 100,000 devices as at
ten. Every figure is what the matching filter of the fleet list returns.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from tortoise.expressions import Q
from tortoise.queryset import QuerySet

from app.models import Device, Kind, PairingSession
from app.presence import PresenceStore
from app.services.devices import expiring_soon_condition
from app.settings import Settings
from statemachines import PairingState


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
    total = await _listed().count()
    online = min(total, await _online(now, settings, presence))
    return FleetSummary(
        total=total,
        online=online,
        offline=total - online,
        pending_approval=await PairingSession.filter(
            kind=Kind.SCANNER, state=PairingState.pending_approval, expires_at__gt=now
        ).count(),
        expiring_soon=await _listed().filter(expiring_soon_condition(now, settings)).count(),
        clone_suspected=await _listed().filter(clone_suspected_at__not_isnull=True).count(),
        at=now,
    )


async def _online(now: datetime, settings: Settings, presence: PresenceStore) -> int:
    """Listed scanners heard from within the online window, as `devices.is_online` judges."""
    window = timedelta(seconds=settings.heartbeat_online_window_seconds)
    since = now - window
    # `is_online` wants the heartbeat strictly after `since`; the store counts from it.
    cutoff = math.nextafter(since.timestamp(), math.inf)
    heard = await presence.count_seen_since(cutoff)
    # The store also holds admin-app phones and devices deregistered a moment ago (a
    # deregistered device is refused from then on, so its last heartbeat is not much later).
    # Both are few: take them back out by id.
    unlisted = await Device.filter(
        Q(kind__not=Kind.SCANNER, deleted_at=None) | Q(deleted_at__gt=since - window)
    ).values_list("id", flat=True)
    if unlisted:
        seen = await presence.last_seen(str(device_id) for device_id in unlisted)
        heard -= sum(1 for at in seen.values() if at >= cutoff)
    # The database's copy, for when the store knows less (Redis emptied, a restart in
    # embedded mode); otherwise the store is ahead of it and holds every device it does.
    recorded = await _listed().filter(last_seen_at__gt=since).count()
    return max(heard, recorded)
