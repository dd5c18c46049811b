"""Cloned credentials: one pair presented by two app installs.

The app makes a random `installationId` at install and keeps it in the Keychain beside its
credentials, so a copy of the pair taken to another install arrives with another id. The
first id a pair is used with is stored on it (and carried to its successor on rotation);
from then on a matching id costs nothing on the token exchange, and a different one flags
the device and, with `CLONE_RESPONSE=revoke`, cuts it off.
"""

from __future__ import annotations

from tortoise.expressions import Subquery
from tortoise.transactions import in_transaction

from app import clock
from app.errors import StaleState, TokenRevoked
from app.models import AuditAction, Device, DeviceToken, EventType
from app.presence import PresenceStore
from app.services import audit, events
from app.services.revocations import revoke_all_active, token_entry
from app.settings import CloneResponse, Settings

# Installation ids are not secrets, but a prefix is enough to tell two installs apart.
_SHOWN = 8


async def check_installation(
    token: DeviceToken,
    installation_id: str | None,
    *,
    ip: str | None,
    settings: Settings,
    presence: PresenceStore,
) -> None:
    """Judge the install presenting `token` (whose `device` is loaded). Returns when the
    request may proceed; raises `TokenRevoked` when a clone was found and revoked."""
    if installation_id is None or token.installation_id == installation_id:
        return
    known = token.installation_id
    if known is None:
        known = await _claim(token, installation_id)
        if known is None:
            return
    await _clone_suspected(
        token, known=known, presented=installation_id, ip=ip, settings=settings, presence=presence
    )


async def _claim(token: DeviceToken, installation_id: str) -> str | None:
    """Store the first id seen on the pair, in one conditional write that also checks the
    device's other pairs; returns the other install's id when the pair or the device is
    already bound to one."""
    bound_elsewhere = (
        DeviceToken.filter(device_id=token.device_id, installation_id__not_isnull=True)
        .exclude(installation_id=installation_id)
        .values("device_id")
    )
    claimed = (
        await DeviceToken.filter(id=token.id, installation_id__isnull=True)
        .exclude(device_id__in=Subquery(bound_elsewhere))
        .update(installation_id=installation_id)
    )
    if claimed:
        token.installation_id = installation_id
        return None
    # Rare: a racing first use, or another install got there first. Find out which.
    other = (
        await DeviceToken.filter(device_id=token.device_id, installation_id__not_isnull=True)
        .exclude(installation_id=installation_id)
        .order_by("issued_at")
        .first()
    )
    return other.installation_id if other is not None else None


async def _clone_suspected(
    token: DeviceToken,
    *,
    known: str,
    presented: str,
    ip: str | None,
    settings: Settings,
    presence: PresenceStore,
) -> None:
    device = token.device
    response = CloneResponse(settings.clone_response)
    revoke = response is CloneResponse.REVOKE
    if device.clone_suspected_at is not None and not revoke:
        return  # flagged already: told once, and the request proceeds
    now = clock.now()
    revoked: list[DeviceToken] = []
    try:
        async with in_transaction() as connection:
            flagged = (
                await Device.filter(id=device.id, clone_suspected_at__isnull=True)
                .using_db(connection)
                .update(clone_suspected_at=now)
            )
            if revoke:
                revoked = await revoke_all_active(device.id, now=now, using_db=connection)
            if flagged or revoked:
                revoked_ids = [str(t.id) for t in revoked]
                await audit.record(
                    token_entry(
                        AuditAction.DEVICE_CLONE_SUSPECTED,
                        token,
                        audit.Actor.device(device.id, ip),
                        knownInstallationId=known[:_SHOWN],
                        presentedInstallationId=presented[:_SHOWN],
                        response=response.value,
                        revokedTokenIds=revoked_ids,
                    ),
                    using_db=connection,
                )
                await events.emit(
                    EventType.DEVICE_CLONE_SUSPECTED,
                    {
                        "deviceId": str(device.id),
                        "label": device.label,
                        "platform": device.platform,
                        "tokenId": str(token.id),
                        "knownInstallationId": known[:_SHOWN],
                        "presentedInstallationId": presented[:_SHOWN],
                        "response": response.value,
                        "revokedTokenIds": revoked_ids,
                        "atIso": now.isoformat().replace("+00:00", "Z"),
                    },
                    using_db=connection,
                )
    except StaleState:
        # A concurrent request revoked these credentials first; it told the story.
        revoked = []
    if device.clone_suspected_at is None:
        device.clone_suspected_at = now
    if revoked:
        await presence.publish_revocations(str(t.id) for t in revoked)
    if revoke:
        raise TokenRevoked
