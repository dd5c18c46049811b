"""The hot path: a heartbeat is a memory write; the database hears about it in batches."""

from __future__ import annotations

from cachetools import LRUCache
from tortoise.transactions import in_transaction

from app import clock
from app.auth.ratelimit import RateLimiter
from app.metrics import HEARTBEATS
from app.models import AuditAction, Device
from app.presence import PresenceStore
from app.services import audit
from app.settings import Settings
from statemachines import DeviceState

# Versions this process last wrote per device: a heartbeat that repeats them writes nothing.
_known_versions: LRUCache[str, tuple[str | None, str | None]] = LRUCache(maxsize=200_000)


async def record(
    *,
    device_id: str,
    app_version: str | None,
    os_version: str | None,
    presence: PresenceStore,
    limiter: RateLimiter,
    settings: Settings,
) -> None:
    await limiter.hit(settings.heartbeats_per_device, "heartbeat", device_id)
    presence.record_heartbeat(device_id, clock.now().timestamp())
    HEARTBEATS.inc()
    reported = (app_version, os_version)
    if (app_version or os_version) and _known_versions.get(device_id) != reported:
        changes = {
            name: value
            for name, value in (("app_version", app_version), ("os_version", os_version))
            if value is not None
        }
        await Device.filter(id=device_id, state=DeviceState.active).update(**changes)
        _known_versions[device_id] = reported


async def update_push_token(*, device_id: str, push_token: str, apns_environment: str) -> None:
    async with in_transaction() as connection:
        await (
            Device.filter(id=device_id, state=DeviceState.active)
            .using_db(connection)
            .update(push_token=push_token, apns_environment=apns_environment)
        )
        await audit.record(
            audit.Entry(
                action=AuditAction.DEVICE_PUSH_TOKEN_UPDATED,
                actor=audit.Actor.device(device_id),
                target_type="device",
                target_id=device_id,
                metadata={"pushTokenLast8": push_token[-8:], "apnsEnvironment": apns_environment},
            ),
            using_db=connection,
        )
