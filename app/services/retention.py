"""What outlives its use is deleted, in one place; the audit log is never touched."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from tortoise.expressions import Q, Subquery

from app.models import (
    ConsoleSession,
    Device,
    DeviceToken,
    Kind,
    OutboxEvent,
    PairingSession,
    WebhookDelivery,
)
from app.services import idempotency
from app.settings import Settings
from statemachines import PairingState, TokenState


@dataclass(frozen=True, slots=True)
class Deleted:
    console_sessions: int
    app_devices: int
    refresh_tokens: int
    qr_codes: int
    idempotent_answers: int
    webhook_events: int

    @property
    def total(self) -> int:
        return (
            self.console_sessions
            + self.app_devices
            + self.refresh_tokens
            + self.qr_codes
            + self.idempotent_answers
            + self.webhook_events
        )


async def cleanup(*, now: datetime, settings: Settings) -> Deleted:
    return Deleted(
        console_sessions=await _console_sessions(
            now - timedelta(days=settings.session_retention_days)
        ),
        app_devices=await _app_devices(now - timedelta(days=settings.app_device_retention_days)),
        refresh_tokens=await _spent_refresh_tokens(now),
        qr_codes=await _dead_qr_codes(now),
        idempotent_answers=await idempotency.delete_expired(now),
        webhook_events=await _settled_webhook_events(
            now - timedelta(days=settings.webhook_retention_days)
        ),
    )


async def _console_sessions(horizon: datetime) -> int:
    """Sessions that ended or timed out before `horizon`."""
    return await ConsoleSession.filter(Q(ended_at__lt=horizon) | Q(expires_at__lt=horizon)).delete()


async def _app_devices(horizon: datetime) -> int:
    """Admin-app connections revoked, or unused, since before `horizon`. Their tokens and
    presence changes go with them (cascade); the QR codes they came from lose the link."""
    stale = Device.filter(kind=Kind.ADMIN_APP).filter(
        Q(deleted_at__lt=horizon)
        | Q(deleted_at=None, last_seen_at__lt=horizon)
        | Q(deleted_at=None, last_seen_at=None, registered_at__lt=horizon)
    )
    # Counted by id: SQLite's count of changed rows would include the cascade.
    stale_ids = await stale.values_list("id", flat=True)
    if stale_ids:
        await Device.filter(id__in=stale_ids).delete()
    return len(stale_ids)


async def _spent_refresh_tokens(now: datetime) -> int:
    app_devices = Device.filter(kind=Kind.ADMIN_APP)
    return (
        await DeviceToken.filter(
            device_id__in=Subquery(app_devices.values("id")), expires_at__lte=now
        )
        .exclude(state=TokenState.active)
        .delete()
    )


async def _dead_qr_codes(now: datetime) -> int:
    """Unused QR codes past their life, and used ones whose connection is gone."""
    unused = (PairingState.minted, PairingState.expired, PairingState.cancelled)
    return await PairingSession.filter(
        Q(state__in=unused, expires_at__lte=now) | Q(state=PairingState.redeemed, device_id=None),
        kind=Kind.ADMIN_APP,
    ).delete()


async def _settled_webhook_events(horizon: datetime) -> int:
    """Events fanned out before `horizon` whose deliveries are all delivered or failed; their
    delivery log goes with them (cascade)."""
    pending = WebhookDelivery.filter(next_attempt_at__isnull=False)
    settled = OutboxEvent.filter(occurred_at__lt=horizon, dispatched_at__isnull=False).exclude(
        id__in=Subquery(pending.values("event_id"))
    )
    settled_ids = await settled.values_list("id", flat=True)
    if settled_ids:
        await OutboxEvent.filter(id__in=settled_ids).delete()
    return len(settled_ids)
