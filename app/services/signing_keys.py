"""JWT signing keys: generated on first start, kept in the database, rotated with a grace period.

The private half is encrypted at rest with a key derived from SECRET_KEY, so a database
dump alone cannot mint access tokens.
"""

from __future__ import annotations

from datetime import timedelta

import orjson
from cryptography.fernet import Fernet
from tortoise.expressions import Q
from tortoise.transactions import in_transaction

from app import clock
from app.auth.jwt import Keyring, generate_key
from app.auth.sealing import sealer
from app.models import AuditAction, SigningKey
from app.services import audit
from app.settings import Settings


def _fernet(settings: Settings) -> Fernet:
    return sealer(settings.secret, "signing-keys")


async def _create(settings: Settings) -> SigningKey:
    material = generate_key()
    return await SigningKey.create(
        id=material.kid,
        private_key=_fernet(settings).encrypt(orjson.dumps(material.private_jwk)).decode(),
        public_jwk=material.public_jwk,
        created_at=clock.now(),
    )


async def load_keyring(settings: Settings) -> Keyring:
    """The published keys, newest signing; creates the first key if there is none."""
    now = clock.now()
    live = Q(retires_at=None) | Q(retires_at__gt=now)
    keys = await SigningKey.filter(live).order_by("-created_at", "-id")
    if not keys:
        await _create(settings)
        # Two replicas starting together may each create one: both are published, and every
        # replica signs with the same (newest) one from the next load on.
        keys = await SigningKey.filter(live).order_by("-created_at", "-id")
    private = orjson.loads(_fernet(settings).decrypt(keys[0].private_key.encode()))
    return Keyring(
        signing=private,
        published=[k.public_jwk for k in keys],
        issuer=settings.public_base_url,
        retiring={k.id: int(k.retires_at.timestamp()) for k in keys if k.retires_at is not None},
    )


async def rotate(*, settings: Settings, grace: timedelta) -> SigningKey:
    """A new signing key; the old ones stay published for `grace` (>= one token lifetime)."""
    now = clock.now()
    async with in_transaction():
        await SigningKey.filter(retires_at=None).update(retires_at=now + grace)
        key = await _create(settings)
        await audit.record(
            audit.Entry(
                action=AuditAction.SIGNING_KEY_ROTATED,
                actor=audit.Actor.system(),
                target_type="signing_key",
                target_id=key.id,
                metadata={"graceSeconds": int(grace.total_seconds())},
            )
        )
    return key


# How often each server checks for a rotated key; a grace period must outlast a token's
# lifetime plus this.
REFRESH_SECONDS = 30


async def refreshed(keyring: Keyring, settings: Settings) -> Keyring:
    """The same keyring (and its verified-token cache) unless the published keys changed."""
    now = clock.now()
    live = Q(retires_at=None) | Q(retires_at__gt=now)
    kids = {str(kid) for kid in await SigningKey.filter(live).values_list("id", flat=True)}
    if kids == keyring.kids:
        return keyring
    return await load_keyring(settings)
