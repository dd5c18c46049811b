"""The audit log: every change is recorded, in the transaction that makes it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from asgi_correlation_id import correlation_id
from tortoise.backends.base.client import BaseDBAsyncClient

from app import clock
from app.models import AuditEvent


@dataclass(frozen=True, slots=True)
class Actor:
    type: str  # "user", "device", "system"
    id: str | None = None
    ip: str | None = None

    @classmethod
    def system(cls) -> Actor:
        return cls(type="system")


@dataclass(frozen=True, slots=True)
class Entry:
    """An audit row to write; `metadata` must already be free of secrets."""

    action: str
    actor: Actor
    target_type: str | None = None
    target_id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


async def record(entry: Entry, *, using_db: BaseDBAsyncClient | None = None) -> AuditEvent:
    return await AuditEvent.create(
        at=clock.now(),
        action=entry.action,
        actor_type=entry.actor.type,
        actor_id=entry.actor.id,
        target_type=entry.target_type,
        target_id=entry.target_id,
        metadata=entry.metadata,
        ip=entry.actor.ip,
        request_id=correlation_id.get(),
        using_db=using_db,
    )
