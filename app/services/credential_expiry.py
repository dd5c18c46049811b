"""Credential renewal: when a device should rotate its pair, and the notice sent once for a
pair close to expiry (`device.token.expiring`), so nobody learns of it from a dead device."""

from __future__ import annotations

from datetime import datetime, timedelta
from uuid import UUID

from tortoise.transactions import in_transaction

from app.logging import get_logger
from app.models import AuditAction, DeviceToken, EventType, Kind
from app.services import audit, events
from app.services.revocations import token_entry
from app.settings import Settings
from statemachines import DeviceState, TokenState

log = get_logger(__name__)


def rotate_after(*, issued_at: datetime, expires_at: datetime, share: float) -> datetime:
    """The moment `share` of the pair's life has passed: from then on its device rotates it."""
    return issued_at + (expires_at - issued_at) * share


async def lifetime_of(token_id: str, *, settings: Settings) -> tuple[datetime, datetime] | None:
    """(expires at, rotate after) of one credential pair, read from the database; for an
    access token that does not carry them."""
    try:
        token_uuid = UUID(token_id)
    except ValueError:
        return None
    rows = await DeviceToken.filter(id=token_uuid).values_list("issued_at", "expires_at")
    if not rows:
        return None
    issued_at, expires_at = rows[0]
    share = settings.credential_rotate_after
    return expires_at, rotate_after(issued_at=issued_at, expires_at=expires_at, share=share)


async def notify_expiring(*, now: datetime, settings: Settings) -> int:
    """Send `device.token.expiring` once for each active scanner pair expiring within the
    notice period; returns how many were sent. Safe on two workers at once: the conditional
    write of `expiry_notified_at` lets one of them send each notice."""
    horizon = now + timedelta(days=settings.credential_expiry_notice_days)
    due = (
        await DeviceToken.filter(
            state=TokenState.active,
            expiry_notified_at__isnull=True,
            expires_at__gt=now,
            expires_at__lte=horizon,
            device__kind=Kind.SCANNER,
            device__state=DeviceState.active,
        )
        .select_related("device")
        .order_by("expires_at")
    )
    sent = 0
    for token in due:
        try:
            sent += await _notify(token, now=now, settings=settings)
        except Exception:
            # One bad row must not stop the sweep; it is tried again on the next run.
            log.exception("credential_expiry_notice_failed", token_id=str(token.id))
    return sent


async def _notify(token: DeviceToken, *, now: datetime, settings: Settings) -> int:
    device = token.device
    rotate_at = rotate_after(
        issued_at=token.issued_at,
        expires_at=token.expires_at,
        share=settings.credential_rotate_after,
    )
    async with in_transaction() as connection:
        claimed = (
            await DeviceToken.filter(
                id=token.id, state=TokenState.active, expiry_notified_at__isnull=True
            )
            .using_db(connection)
            .update(expiry_notified_at=now)
        )
        if not claimed:
            return 0
        days_left = (token.expires_at - now) / timedelta(days=1)
        await audit.record(
            token_entry(
                AuditAction.DEVICE_TOKEN_EXPIRING,
                token,
                audit.Actor.system(),
                expiresAtIso=_iso(token.expires_at),
                daysLeft=round(days_left, 1),
            ),
            using_db=connection,
        )
        await events.emit(
            EventType.DEVICE_TOKEN_EXPIRING,
            {
                "deviceId": str(device.id),
                "tokenId": str(token.id),
                "label": device.label,
                "platform": device.platform,
                "expiresAtIso": _iso(token.expires_at),
                "rotateAfterIso": _iso(rotate_at),
                "atIso": _iso(now),
            },
            using_db=connection,
        )
    return 1


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")
