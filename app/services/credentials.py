"""Device credentials: the long-lived `deviceToken` + `deviceSecret` pair, shown once."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from tortoise.backends.base.client import BaseDBAsyncClient

from app.auth.hashing import sha256_hex
from app.models import Device, DeviceToken, User
from app.models.device import DeviceKind
from app.services import audit

TOKEN_PREFIX = "pxd_"  # noqa: S105 (a public prefix)
SECRET_PREFIX = "pxs_"  # noqa: S105


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


def _new_pair() -> tuple[str, str, str]:
    lookup_id = secrets.token_hex(8)
    device_token = f"{TOKEN_PREFIX}{lookup_id}_{secrets.token_urlsafe(24)}"
    device_secret = f"{SECRET_PREFIX}{secrets.token_urlsafe(32)}"
    return lookup_id, device_token, device_secret


async def register_device(
    *,
    details: DeviceDetails,
    owner: User,
    actor: audit.Actor,
    now: datetime,
    ttl: timedelta,
    ip: str | None,
    using_db: BaseDBAsyncClient,
) -> IssuedCredentials:
    """Create the device and its first credentials, audited, in the caller's transaction."""
    device = await Device.create(
        kind=DeviceKind.SCANNER,
        label=details.label,
        platform=details.platform,
        model=details.model,
        os_version=details.os_version,
        app_version=details.app_version,
        apns_environment=details.apns_environment,
        push_token=details.push_token,
        capabilities=list(details.capabilities),
        owner=owner,
        registered_at=now,
        last_ip=ip,
        using_db=using_db,
    )
    await audit.record(
        audit.Entry(
            action="device.registered",
            actor=actor,
            target_type="device",
            target_id=str(device.id),
            metadata={
                "deviceId": str(device.id),
                "kind": device.kind.value,
                "platform": device.platform,
                "model": device.model,
                "appVersion": device.app_version,
                "capabilities": list(details.capabilities),
            },
        ),
        using_db=using_db,
    )
    return await issue_token(device=device, actor=actor, now=now, ttl=ttl, using_db=using_db)


async def issue_token(
    *,
    device: Device,
    actor: audit.Actor,
    now: datetime,
    ttl: timedelta,
    using_db: BaseDBAsyncClient,
) -> IssuedCredentials:
    lookup_id, device_token, device_secret = _new_pair()
    token = await DeviceToken.create(
        device=device,
        lookup_id=lookup_id,
        token_hash=sha256_hex(device_token),
        secret_hash=sha256_hex(device_secret),
        issued_at=now,
        expires_at=now + ttl,
        using_db=using_db,
    )
    await audit.record(
        audit.Entry(
            action="device.token.issued",
            actor=actor,
            target_type="device",
            target_id=str(device.id),
            metadata={
                "deviceId": str(device.id),
                "tokenId": str(token.id),
                "tokenHashPrefix": token.token_hash[:8],
            },
        ),
        using_db=using_db,
    )
    return IssuedCredentials(device, token, device_token, device_secret)
