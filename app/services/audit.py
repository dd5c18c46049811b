"""The audit log: every change is recorded, in the transaction that makes it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from asgi_correlation_id import correlation_id
from tortoise.backends.base.client import BaseDBAsyncClient

from app import clock
from app.models import AuditAction, AuditEvent
from app.services.pagination import Page, newest_first


@dataclass(frozen=True, slots=True)
class Actor:
    """Who did it: a console user, a device (known or not yet), or the service itself."""

    type: str  # "user", "device", "system"
    id: str | None = None
    ip: str | None = None

    @classmethod
    def user(cls, user_id: UUID | str, ip: str | None = None) -> Actor:
        return cls(type="user", id=str(user_id), ip=ip)

    @classmethod
    def device(cls, device_id: UUID | str | None = None, ip: str | None = None) -> Actor:
        return cls(type="device", id=str(device_id) if device_id is not None else None, ip=ip)

    @classmethod
    def system(cls) -> Actor:
        return cls(type="system")


@dataclass(frozen=True, slots=True)
class Entry:
    """An audit row to write; `metadata` must already be free of secrets."""

    action: AuditAction
    actor: Actor
    target_type: str | None = None
    target_id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


async def record(entry: Entry, *, using_db: BaseDBAsyncClient | None = None) -> AuditEvent:
    row = unsaved(entry)
    await row.save(using_db=using_db)
    return row


async def record_many(entries: list[Entry], *, using_db: BaseDBAsyncClient | None = None) -> None:
    """Several rows of one change in one statement."""
    await AuditEvent.bulk_create([unsaved(entry) for entry in entries], using_db=using_db)


def unsaved(entry: Entry, *, at: datetime | None = None) -> AuditEvent:
    """The row `record` writes, for a caller that inserts many at once."""
    return AuditEvent(
        at=at or clock.now(),
        action=entry.action.value,
        actor_type=entry.actor.type,
        actor_id=entry.actor.id,
        target_type=entry.target_type,
        target_id=entry.target_id,
        metadata=entry.metadata,
        ip=entry.actor.ip,
        request_id=correlation_id.get(),
    )


async def list_events(
    *, action: str | None, device_id: str | None, cursor: str | None, limit: int
) -> Page[AuditEvent]:
    query = AuditEvent.all()
    if action:
        query = query.filter(action=action)
    if device_id:
        query = query.filter(target_type="device", target_id=device_id)
    return await newest_first(query, time_field="at", cursor=cursor, limit=limit)


async def for_device(device_id: str, limit: int = 50) -> list[AuditEvent]:
    return await AuditEvent.filter(target_type="device", target_id=device_id).limit(limit)
