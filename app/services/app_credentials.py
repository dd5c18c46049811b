"""Admin-app credentials: the rotating refresh token, and what every access token is checked
against.

A refresh token is one `DeviceToken` row of the admin-app device (`pxr_<lookup id>_<random>`,
stored as its SHA-256). Each refresh rotates it; a rotated-out token that comes back means a
copy exists, so the device is revoked. Access JWTs carry the row's id as `tid`: rotating or
revoking the row ends them too.
"""

from __future__ import annotations

import contextlib
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from app import clock
from app.auth.hashing import new_token, sha256_hex
from app.errors import (
    Conflict,
    InvalidCredentials,
    NotAuthenticated,
    StaleState,
    TokenExpired,
    TokenRevoked,
)
from app.models import AuditAction, Device, DeviceToken, EventType, Kind, User
from app.presence import PresenceStore
from app.services import audit, events
from app.services.credential_lookup import (
    find_presented,
    race_window,
    rotated_seconds_ago,
    verdict,
)
from app.services.revocations import revoke_all_active
from app.services.transitions import fire
from app.settings import Settings
from statemachines import CredentialVerdict, DeviceMachine, DeviceTokenMachine, TokenState

_JUST_USED = "This refresh token was just used by another request."

REFRESH_PREFIX = "pxr_"
ACCESS_TOKEN_LIFETIME_SECONDS = 15 * 60
_SHAPE = re.compile(rf"^{REFRESH_PREFIX}([0-9a-f]{{16}})_[A-Za-z0-9_-]{{43}}$")


@dataclass(frozen=True)
class AppTokens:
    """The refresh token exists in clear only here, on its way into one response."""

    device: Device
    token: DeviceToken
    refresh_token: str

    def __repr__(self) -> str:
        return f"AppTokens(device={self.device.id}, token={self.token.id}, refresh_token=***)"


def refresh_ttl(settings: Settings) -> timedelta:
    return timedelta(days=settings.app_refresh_token_ttl_days)


async def issue(
    *, device: Device, now: datetime, ttl: timedelta, using_db: BaseDBAsyncClient
) -> AppTokens:
    lookup_id = secrets.token_hex(8)
    refresh_token = f"{REFRESH_PREFIX}{lookup_id}_{new_token()}"
    digest = sha256_hex(refresh_token)
    token = await DeviceToken.create(
        device=device,
        lookup_id=lookup_id,
        # One string, not a token + secret pair: both columns hold its hash, so no device
        # credential pair can ever match it.
        token_hash=digest,
        secret_hash=digest,
        issued_at=now,
        expires_at=now + ttl,
        using_db=using_db,
    )
    return AppTokens(device, token, refresh_token)


async def refresh(
    *, refresh_token: str, ip: str | None, settings: Settings, presence: PresenceStore
) -> AppTokens:
    """New refresh token for old, exactly once; a replayed old one revokes the device."""
    row = await find_presented(_SHAPE, refresh_token)
    if row is None or row.device.kind is not Kind.ADMIN_APP:
        raise InvalidCredentials("The refresh token is not valid.")
    device = row.device
    now = clock.now()
    match verdict(row, now, race_window=race_window(settings)):
        case CredentialVerdict.revoked:
            raise TokenRevoked
        case CredentialVerdict.just_rotated:
            await _replayed_in_race_window(row, device, ip, now, settings)
            raise Conflict(_JUST_USED)
        case CredentialVerdict.reused:
            await _reuse_detected(row, device, ip, presence)
            raise TokenRevoked("This refresh token was already used; the app was signed out.")
        case CredentialVerdict.lapsed | CredentialVerdict.expired:
            with contextlib.suppress(StaleState):
                await fire(row, DeviceTokenMachine, "expire", now=now, changes={"ended_at": now})
            raise TokenExpired("The refresh token has expired; connect the app again.")
        case CredentialVerdict.valid:
            pass
    try:
        async with in_transaction() as connection:
            await fire(
                row,
                DeviceTokenMachine,
                "rotate",
                now=now,
                changes={"ended_at": now},
                using_db=connection,
            )
            issued = await issue(
                device=device, now=now, ttl=refresh_ttl(settings), using_db=connection
            )
            await (
                DeviceToken.filter(id=row.id)
                .using_db(connection)
                .update(replaced_by_id=issued.token.id)
            )
            await (
                Device.filter(id=device.id)
                .using_db(connection)
                .update(last_ip=ip, last_seen_at=now)
            )
    except StaleState:
        # A concurrent refresh rotated it between our read and our write: a replay at once.
        await row.refresh_from_db()
        if row.state == TokenState.rotated:
            await _replayed_in_race_window(row, device, ip, clock.now(), settings)
        raise Conflict(_JUST_USED) from None
    await presence.publish_revocations([str(row.id)])
    presence.record_heartbeat(str(device.id), now.timestamp())
    return issued


async def _replayed_in_race_window(
    old: DeviceToken, device: Device, ip: str | None, now: datetime, settings: Settings
) -> None:
    """A rotated-out refresh token came back inside the race window: most likely the app's
    own retry, so the connection stays, but a thief's try leaves this row."""
    await audit.record(
        audit.Entry(
            action=AuditAction.APP_REFRESH_REPLAYED_IN_RACE_WINDOW,
            actor=audit.Actor.device(device.id, ip),
            target_type="device",
            target_id=str(device.id),
            metadata={
                "deviceId": str(device.id),
                "deviceName": device.label,
                "tokenId": str(old.id),
                "replacedByTokenId": str(old.replaced_by_id) if old.replaced_by_id else None,
                "rotatedSecondsAgo": rotated_seconds_ago(old, now),
                "raceWindowSeconds": settings.rotation_race_window_seconds,
            },
        )
    )


async def _reuse_detected(
    old: DeviceToken, device: Device, ip: str | None, presence: PresenceStore
) -> None:
    with contextlib.suppress(StaleState):
        await revoke_device(
            device,
            action=AuditAction.APP_REFRESH_REUSE_DETECTED,
            actor=audit.Actor.device(device.id, ip),
            reason="refresh_token_reused",
            presence=presence,
            tokenId=str(old.id),
        )


async def revoke_device(
    device: Device,
    *,
    action: AuditAction,
    actor: audit.Actor,
    reason: str,
    presence: PresenceStore,
    **metadata: str,
) -> Device:
    """Deregister the connection and revoke its refresh token; its access tokens die with it.

    Raises `StaleState` if it is already revoked.
    """
    now = clock.now()
    async with in_transaction() as connection:
        revoked = await revoke_all_active(device.id, now=now, using_db=connection)
        await fire(
            device,
            DeviceMachine,
            "deregister",
            changes={"deleted_at": now},
            using_db=connection,
            entry=audit.Entry(
                action=action,
                actor=actor,
                target_type="device",
                target_id=str(device.id),
                metadata={
                    "deviceId": str(device.id),
                    "deviceName": device.label,
                    "reason": reason,
                    "revokedTokenIds": [str(t.id) for t in revoked],
                    **metadata,
                },
            ),
        )
        await events.emit(
            EventType.APP_DEVICE_REVOKED,
            {
                "deviceId": str(device.id),
                "deviceName": device.label,
                "ownerId": str(device.owner_id),
                "reason": reason,
                "atIso": events.iso(now),
            },
            using_db=connection,
        )
    await presence.publish_revocations(str(t.id) for t in revoked)
    return device


async def owner_of_access_token(*, device_id: str, token_id: str) -> User:
    """The database's word on a verified access token: its refresh token and device still
    live, and the admin it belongs to, with the role they have now."""
    try:
        token_uuid, device_uuid = uuid.UUID(token_id), uuid.UUID(device_id)
    except ValueError:
        raise InvalidCredentials("The access token is not valid here.") from None
    row = await DeviceToken.get_or_none(id=token_uuid, device_id=device_uuid).select_related(
        "device__owner"
    )
    if (
        row is None
        or row.device.kind is not Kind.ADMIN_APP
        # Only `valid` passes, so the race window cannot change the answer here.
        or verdict(row, clock.now(), race_window=timedelta(0)) is not CredentialVerdict.valid
    ):
        raise TokenRevoked("This app's access was revoked; connect it again.")
    owner: User = row.device.owner
    if not owner.is_active:
        raise NotAuthenticated("This account is disabled.")
    return owner
