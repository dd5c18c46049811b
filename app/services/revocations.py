"""Ending credentials: every live credential of a device at once, and the database's word
on what is revoked (the `RevocationSource` the presence store falls back on)."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from tortoise.backends.base.client import BaseDBAsyncClient

from app.models import AuditAction, DeviceToken
from app.services import audit
from app.services.transitions import fire
from statemachines import DeviceState, DeviceTokenMachine, TokenState


async def revoke_all_active(
    device_id: UUID,
    *,
    now: datetime,
    using_db: BaseDBAsyncClient,
    audited_as: tuple[audit.Actor, str] | None = None,
) -> list[DeviceToken]:
    """Revoke the device's active credentials in the caller's transaction; returns them.

    With `audited_as=(actor, reason)` each revocation gets its own `device.token.revoked`
    row; otherwise the caller's one audit row tells the story. Publish the returned ids to
    the presence store once the transaction has committed.
    """
    active = await DeviceToken.filter(device_id=device_id, state=TokenState.active).using_db(
        using_db
    )
    for token in active:
        entry = None
        if audited_as is not None:
            actor, reason = audited_as
            entry = token_entry(AuditAction.DEVICE_TOKEN_REVOKED, token, actor, reason=reason)
        await fire(
            token,
            DeviceTokenMachine,
            "revoke",
            changes={"ended_at": now},
            entry=entry,
            using_db=using_db,
        )
    return active


def token_entry(
    action: AuditAction, token: DeviceToken, actor: audit.Actor, **metadata: object
) -> audit.Entry:
    """An audit entry about one credential of a device."""
    device_id = str(token.device_id)
    return audit.Entry(
        action=action,
        actor=actor,
        target_type="device",
        target_id=device_id,
        metadata={"deviceId": device_id, "tokenId": str(token.id), **metadata},
    )


class DatabaseRevocations:
    """Asked by the presence store whenever its memory cannot be trusted."""

    async def is_revoked(self, token_id: str) -> bool:
        try:
            token_uuid = UUID(token_id)
        except ValueError:
            return True
        rows = await DeviceToken.filter(id=token_uuid).values_list("state", "device__state")
        return not rows or rows[0] != (TokenState.active, DeviceState.active)

    async def revoked_since(self, since: datetime) -> list[str]:
        ended = await self.ended_since(since)
        of_dead_devices = await DeviceToken.filter(
            state=TokenState.active, device__state=DeviceState.deregistered
        ).values_list("id", flat=True)
        return [*ended, *(str(token_id) for token_id in of_dead_devices)]

    async def ended_since(self, since: datetime) -> list[str]:
        ended = (
            await DeviceToken.filter(ended_at__gte=since)
            .exclude(state=TokenState.active)
            .values_list("id", flat=True)
        )
        return [str(token_id) for token_id in ended]
