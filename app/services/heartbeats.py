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
# The versions a heartbeat reports, written only where they differ. After a restart every
# device's first heartbeat asks: a fleet's worth of statements, so written out once per
# dialect (Tortoise would build each one afresh) and a row already right is not rewritten.
_SET_VERSIONS = {
    "postgres": "UPDATE devices SET app_version = COALESCE($1, app_version),"
    " os_version = COALESCE($2, os_version) WHERE id = $3 AND state = $4"
    " AND (app_version IS DISTINCT FROM COALESCE($1, app_version)"
    " OR os_version IS DISTINCT FROM COALESCE($2, os_version))",
    "sqlite": "UPDATE devices SET app_version = COALESCE(?1, app_version),"
    " os_version = COALESCE(?2, os_version) WHERE id = ?3 AND state = ?4"
    " AND (app_version IS NOT COALESCE(?1, app_version)"
    " OR os_version IS NOT COALESCE(?2, os_version))",
}


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
        db = Device._meta.db
        await db.execute_query(
            _SET_VERSIONS[db.capabilities.dialect],
            [app_version, os_version, device_id, DeviceState.active.value],
        )
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
