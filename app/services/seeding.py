"""Paired scanners made in bulk, for load tests and for looking at a large fleet.

Each seeded device is what a registration leaves behind: an `active` scanner owned by an
admin, one `active` credential pair of the same shapes stored only as SHA-256 hashes, and the
same two audit rows (`device.registered`, `device.token.issued`). The rows name the
`seed-devices` system actor rather than an admin, because no admin minted a code for them,
and say `seeded: true`. One batch is one transaction of three bulk inserts.

No webhook event is written: subscribers would be told of thousands of pairings that never
happened, and the outbox would queue one delivery per device per endpoint.
"""

from __future__ import annotations

import random
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from tortoise.transactions import in_transaction

from app.auth.hashing import sha256_hex
from app.errors import InvalidInput, NotFound
from app.models import AuditEvent, Device, DeviceToken, Role, User
from app.services import audit
from app.services.accounts import normalise_email
from app.services.credentials import (
    DeviceDetails,
    issued_entry,
    new_device,
    new_pair,
    registered_entry,
)
from app.services.events import iso

DEFAULT_BATCH = 1000
MAX_BATCH = 10_000
SEED_ACTOR = audit.Actor(type="system", id="seed-devices")

# Where a warehouse operator would put each kind of device, so search has words to find.
_SITES = (
    "Leeds DC",
    "Rotterdam Hub",
    "Memphis DC",
    "Lyon Cross-Dock",
    "Monterrey Plant",
    "Osaka Depot",
    "Gdansk Port",
    "Reno Fulfilment",
)
_ROLES = {
    "ios": ("Picker", "Receiving", "Returns", "Cycle Count", "Yard"),
    "ipados": ("Packing Station", "Dock Door", "Quality Check"),
    "macos": ("Shipping Desk", "Inventory Office"),
}


@dataclass(frozen=True, slots=True)
class SeededDevice:
    """One seeded device; its plaintext credentials exist only here, on their way to a file."""

    device_id: UUID
    token_id: UUID
    device_token: str
    device_secret: str
    expires_at: datetime

    @property
    def expires_at_iso(self) -> str:
        return iso(self.expires_at)

    def __repr__(self) -> str:
        return f"SeededDevice(device={self.device_id}, token={self.token_id}, secrets=***)"


def seeded_label(serial: str, platform: str, model_name: str) -> str:
    """A label like an operator's (`Rotterdam Hub · Dock Door · iPad Air … · SIM-fleet-00042`),
    the same for the same serial."""
    chooser = random.Random(serial)
    roles = _ROLES.get(platform, ("Scanner",))
    return f"{chooser.choice(_SITES)} · {chooser.choice(roles)} · {model_name} · {serial}"


async def seeding_owner(email: str | None) -> User:
    """The admin who owns seeded devices: the one named, or else the first admin created."""
    query = User.filter(role=Role.ADMIN, is_active=True)
    if email is not None:
        owner = await query.get_or_none(email=normalise_email(email))
        if owner is None:
            raise NotFound(f"No active admin has the email {email}.")
        return owner
    first = await query.order_by("created_at").first()
    if first is None:
        raise NotFound("There is no admin to own the devices: create one first.")
    return first


async def _seed_batch(
    batch: Sequence[DeviceDetails], *, owner: User, now: datetime, ttl: timedelta
) -> list[SeededDevice]:
    devices = [new_device(details, owner_id=owner.id, now=now, ip=None) for details in batch]
    tokens: list[DeviceToken] = []
    seeded: list[SeededDevice] = []
    for device in devices:
        lookup_id, device_token, device_secret = new_pair()
        token = DeviceToken(
            device_id=device.id,
            lookup_id=lookup_id,
            token_hash=sha256_hex(device_token),
            secret_hash=sha256_hex(device_secret),
            issued_at=now,
            expires_at=now + ttl,
        )
        tokens.append(token)
        seeded.append(SeededDevice(device.id, token.id, device_token, device_secret, now + ttl))
    # `audit.record` writes one row per statement; these go in by the thousand.
    rows = [
        audit.unsaved(registered_entry(device, SEED_ACTOR, seeded=True), at=now)
        for device in devices
    ] + [audit.unsaved(issued_entry(token, SEED_ACTOR, seeded=True), at=now) for token in tokens]
    async with in_transaction() as connection:
        await Device.bulk_create(devices, using_db=connection)
        await DeviceToken.bulk_create(tokens, using_db=connection)
        await AuditEvent.bulk_create(rows, using_db=connection)
    return seeded


async def seed_devices(
    *,
    details: Sequence[DeviceDetails],
    owner: User,
    now: datetime,
    ttl: timedelta,
    batch_size: int = DEFAULT_BATCH,
) -> AsyncGenerator[list[SeededDevice], None]:
    """Create one paired scanner per entry of `details`, `batch_size` to a transaction;
    yields each batch once it is committed, so a stop keeps every batch already yielded."""
    if not 1 <= batch_size <= MAX_BATCH:
        raise InvalidInput(f"batch size must be 1 to {MAX_BATCH}", field="batch")
    for start in range(0, len(details), batch_size):
        yield await _seed_batch(details[start : start + batch_size], owner=owner, now=now, ttl=ttl)
