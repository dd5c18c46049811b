"""Device credentials: the long-lived `deviceToken` + `deviceSecret` pair, shown once."""

from __future__ import annotations

import contextlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from app import clock
from app.auth.hashing import sha256_hex
from app.errors import (
    Conflict,
    DomainError,
    InvalidCredentials,
    StaleState,
    TokenExpired,
    TokenRevoked,
)
from app.metrics import TOKEN_EXCHANGES, VERIFIED_PAIR_LOOKUPS
from app.models import AuditAction, Device, DeviceToken, EventType, Kind
from app.presence import PresenceStore
from app.services import audit, events
from app.services.clone_detection import check_installation
from app.services.credential_lookup import (
    find_presented,
    race_window,
    rotated_seconds_ago,
    verdict,
)
from app.services.revocations import revoke_all_active, token_entry
from app.services.transitions import fire
from app.services.verified_pairs import Grant, VerifiedPairs
from app.settings import Settings
from statemachines import CredentialVerdict, DeviceTokenMachine, TokenState

TOKEN_PREFIX = "pxd_"
SECRET_PREFIX = "pxs_"
_TOKEN_SHAPE = re.compile(rf"^{TOKEN_PREFIX}([0-9a-f]{{16}})_[A-Za-z0-9_-]{{32}}$")


@dataclass(frozen=True, slots=True)
class DeviceDetails:
    label: str
    platform: str
    model: str
    os_version: str
    app_version: str
    apns_environment: str | None
    capabilities: tuple[str, ...]
    push_token: str | None


@dataclass(frozen=True)
class IssuedCredentials:
    """The plaintext exists only in this value, on its way into one response."""

    device: Device
    token: DeviceToken
    device_token: str
    device_secret: str

    def __repr__(self) -> str:
        return f"IssuedCredentials(device={self.device.id}, token={self.token.id}, secrets=***)"


@dataclass(frozen=True)
class Authenticated:
    device: Device
    token: DeviceToken


def new_pair() -> tuple[str, str, str]:
    lookup_id = secrets.token_hex(8)
    device_token = f"{TOKEN_PREFIX}{lookup_id}_{secrets.token_urlsafe(24)}"
    device_secret = f"{SECRET_PREFIX}{secrets.token_urlsafe(32)}"
    return lookup_id, device_token, device_secret


async def register_device(
    *,
    details: DeviceDetails,
    owner_id: UUID,
    actor: audit.Actor,
    now: datetime,
    ttl: timedelta,
    ip: str | None,
    using_db: BaseDBAsyncClient,
) -> IssuedCredentials:
    """Create the device and its first credentials, audited, in the caller's transaction."""
    device = new_device(details, owner_id=owner_id, now=now, ip=ip)
    await device.save(using_db=using_db)
    issued = await _new_token(device=device, now=now, ttl=ttl, using_db=using_db)
    # One statement for both rows: a registration is a burst of round trips already.
    await audit.record_many(
        [registered_entry(device, actor), issued_entry(issued.token, actor)], using_db=using_db
    )
    return issued


async def issue_token(
    *,
    device: Device,
    actor: audit.Actor,
    now: datetime,
    ttl: timedelta,
    using_db: BaseDBAsyncClient,
    installation_id: str | None = None,
) -> IssuedCredentials:
    issued = await _new_token(
        device=device, now=now, ttl=ttl, using_db=using_db, installation_id=installation_id
    )
    await audit.record(issued_entry(issued.token, actor), using_db=using_db)
    return issued


async def _new_token(
    *,
    device: Device,
    now: datetime,
    ttl: timedelta,
    using_db: BaseDBAsyncClient,
    installation_id: str | None = None,
) -> IssuedCredentials:
    lookup_id, device_token, device_secret = new_pair()
    token = await DeviceToken.create(
        device=device,
        installation_id=installation_id,
        lookup_id=lookup_id,
        token_hash=sha256_hex(device_token),
        secret_hash=sha256_hex(device_secret),
        issued_at=now,
        expires_at=now + ttl,
        using_db=using_db,
    )
    return IssuedCredentials(device, token, device_token, device_secret)


def new_device(details: DeviceDetails, *, owner_id: UUID, now: datetime, ip: str | None) -> Device:
    """The scanner a registration creates, not yet saved."""
    return Device(
        kind=Kind.SCANNER,
        label=details.label,
        platform=details.platform,
        model=details.model,
        os_version=details.os_version,
        app_version=details.app_version,
        apns_environment=details.apns_environment,
        push_token=details.push_token,
        capabilities=list(details.capabilities),
        owner_id=owner_id,
        registered_at=now,
        last_ip=ip,
    )


def registered_entry(device: Device, actor: audit.Actor, **metadata: Any) -> audit.Entry:
    return audit.Entry(
        action=AuditAction.DEVICE_REGISTERED,
        actor=actor,
        target_type="device",
        target_id=str(device.id),
        metadata={
            "deviceId": str(device.id),
            "kind": Kind.SCANNER.value,
            "platform": device.platform,
            "model": device.model,
            "appVersion": device.app_version,
            "capabilities": list(device.capabilities),
            **metadata,
        },
    )


def issued_entry(token: DeviceToken, actor: audit.Actor, **metadata: Any) -> audit.Entry:
    return token_entry(
        AuditAction.DEVICE_TOKEN_ISSUED,
        token,
        actor,
        tokenHashPrefix=token.token_hash[:8],
        **metadata,
    )


_ROTATED_CONCURRENTLY = "These credentials were rotated by a concurrent request."


async def authenticate(
    *,
    device_token: str,
    device_secret: str,
    ip: str | None,
    settings: Settings,
    presence: PresenceStore,
) -> Authenticated:
    """Check a credential pair. Each refusal names why; unknown and wrong answer alike."""
    row = await find_presented(_TOKEN_SHAPE, device_token, device_secret)
    if row is None or row.device.kind is not Kind.SCANNER:
        raise InvalidCredentials("The device credentials are not valid.")
    now = clock.now()
    match verdict(row, now, race_window=race_window(settings)):
        case CredentialVerdict.valid:
            return Authenticated(row.device, row)
        case CredentialVerdict.just_rotated:
            await _replayed_in_race_window(row, ip, now, settings)
            raise Conflict(_ROTATED_CONCURRENTLY)
        case CredentialVerdict.reused:
            await _reuse_detected(row, ip, presence)
            raise TokenRevoked
        case CredentialVerdict.lapsed:
            with contextlib.suppress(StaleState):
                await fire(
                    row,
                    DeviceTokenMachine,
                    "expire",
                    now=now,
                    changes={"ended_at": now},
                    entry=token_entry(AuditAction.DEVICE_TOKEN_EXPIRED, row, audit.Actor.system()),
                )
            raise TokenExpired
        case CredentialVerdict.expired:
            raise TokenExpired
        case CredentialVerdict.revoked:
            raise TokenRevoked


async def _authenticate_install(
    *,
    device_token: str,
    device_secret: str,
    installation_id: str | None,
    ip: str | None,
    settings: Settings,
    presence: PresenceStore,
) -> Authenticated:
    """`authenticate`, then the install presenting the pair checked against the one it is
    bound to (`clone_detection`)."""
    current = await authenticate(
        device_token=device_token,
        device_secret=device_secret,
        ip=ip,
        settings=settings,
        presence=presence,
    )
    await check_installation(
        current.token, installation_id, ip=ip, settings=settings, presence=presence
    )
    return current


async def exchange(
    *,
    device_token: str,
    device_secret: str,
    ip: str | None,
    settings: Settings,
    presence: PresenceStore,
    verified: VerifiedPairs,
    installation_id: str | None = None,
) -> Grant:
    """`authenticate` for an access token, answered from `verified` when this process has
    verified the pair before; counted by outcome in `polaris_token_exchanges` (`issued`, or
    the refusal's problem code)."""
    try:
        grant = await verified.grant(
            _TOKEN_SHAPE, device_token, device_secret, installation_id, presence
        )
        if grant is None:
            current = await _authenticate_install(
                device_token=device_token,
                device_secret=device_secret,
                installation_id=installation_id,
                ip=ip,
                settings=settings,
                presence=presence,
            )
            grant = verified.remember(current.device, current.token)
            VERIFIED_PAIR_LOOKUPS.labels("database").inc()
        else:
            VERIFIED_PAIR_LOOKUPS.labels("memory").inc()
    except DomainError as exc:
        TOKEN_EXCHANGES.labels(exc.code).inc()
        raise
    TOKEN_EXCHANGES.labels("issued").inc()
    return grant


async def _reuse_detected(old: DeviceToken, ip: str | None, presence: PresenceStore) -> None:
    """A rotated-out secret came back: someone kept a copy. Cut the device off entirely."""
    now = clock.now()
    async with in_transaction() as connection:
        revoked = await revoke_all_active(old.device_id, now=now, using_db=connection)
        await audit.record(
            token_entry(
                AuditAction.DEVICE_TOKEN_REUSE_DETECTED,
                old,
                audit.Actor.device(old.device_id, ip),
                revokedTokenIds=[str(t.id) for t in revoked],
            ),
            using_db=connection,
        )
        await events.emit(
            EventType.DEVICE_TOKEN_REUSE_DETECTED,
            {
                "deviceId": str(old.device_id),
                "tokenId": str(old.id),
                "revokedTokenIds": [str(t.id) for t in revoked],
                "ip": ip,
                "atIso": events.iso(now),
            },
            using_db=connection,
        )
    await presence.publish_revocations(str(t.id) for t in revoked)


async def _replayed_in_race_window(
    old: DeviceToken, ip: str | None, now: datetime, settings: Settings
) -> None:
    """A rotated-out pair came back inside the race window: most likely a retry that raced
    the rotation, so the device keeps its credentials, but a thief's try leaves this row."""
    await audit.record(
        token_entry(
            AuditAction.DEVICE_TOKEN_REPLAYED_IN_RACE_WINDOW,
            old,
            audit.Actor.device(old.device_id, ip),
            replacedByTokenId=str(old.replaced_by_id) if old.replaced_by_id else None,
            rotatedSecondsAgo=rotated_seconds_ago(old, now),
            raceWindowSeconds=settings.rotation_race_window_seconds,
        )
    )


async def rotate(
    *,
    device_token: str,
    device_secret: str,
    ttl: timedelta,
    ip: str | None,
    settings: Settings,
    presence: PresenceStore,
    installation_id: str | None = None,
) -> IssuedCredentials:
    """New pair for old: the old one is `rotated` in the same transaction, exactly once."""
    current = await _authenticate_install(
        device_token=device_token,
        device_secret=device_secret,
        installation_id=installation_id,
        ip=ip,
        settings=settings,
        presence=presence,
    )
    now = clock.now()
    actor = audit.Actor.device(current.device.id)
    try:
        async with in_transaction() as connection:
            await fire(
                current.token,
                DeviceTokenMachine,
                "rotate",
                now=now,
                changes={"ended_at": now},
                using_db=connection,
            )
            # The install the old pair is bound to keeps its binding on the new one.
            issued = await issue_token(
                device=current.device,
                actor=actor,
                now=now,
                ttl=ttl,
                using_db=connection,
                installation_id=current.token.installation_id or installation_id,
            )
            await (
                DeviceToken.filter(id=current.token.id)
                .using_db(connection)
                .update(replaced_by_id=issued.token.id)
            )
            await audit.record(
                token_entry(
                    AuditAction.DEVICE_TOKEN_ROTATED,
                    current.token,
                    actor,
                    newTokenId=str(issued.token.id),
                ),
                using_db=connection,
            )
    except StaleState:
        # A concurrent request rotated it between our read and our write: a replay at once.
        await current.token.refresh_from_db()
        if current.token.state == TokenState.rotated:
            await _replayed_in_race_window(current.token, ip, clock.now(), settings)
        raise Conflict(_ROTATED_CONCURRENTLY) from None
    await presence.publish_revocations([str(current.token.id)])
    return issued
