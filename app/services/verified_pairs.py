"""Credential pairs this process has verified against the database, for the token exchange.

A device trades its pair for an access token every few minutes, and an app relaunched, a
fleet back from an outage or a retrying client trades it again at once. Reading and judging
the row each time cost most of an exchange; a pair verified once is kept here, with what the
verdict and the answer need, for a bounded time.

Nothing kept here outlives the truth for long, and nothing is kept on trust:

- Every way a pair stops being valid (revocation, deregistration, rotation, a reused or
  cloned secret) publishes its id to the revocation set (`PresenceStore.is_revoked`), on
  this process at once and on every other over Redis, as access tokens already rely on; a
  hit asks that set. While the set cannot be trusted (Redis lost) it asks the database, and
  a message lost on its way is read from the database within `REVOCATION_POLL_SECONDS`.
- Expiry is judged from the kept time with the request's clock; a pair at its end goes to
  the database, which records the expiry.
- The presented token and secret are compared with the kept hashes in constant time; a
  miss, an unknown install, anything unusual, takes the database path.
- An entry lives at most `ttl`, shorter than the revocation set remembers a revocation
  (`REVOCATION_MEMORY`), so no entry can outlive the record of its own revocation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from cachetools import TTLCache

from app import clock
from app.auth.hashing import matches, sha256_hex
from app.models import Device, DeviceToken
from app.presence import PresenceStore
from app.presence.store import REVOCATION_MEMORY


@dataclass(frozen=True, slots=True)
class Grant:
    """What an access token is minted from: the pair and the device it speaks for."""

    device_id: str
    token_id: str
    capabilities: tuple[str, ...]
    issued_at: datetime
    expires_at: datetime

    @classmethod
    def of(cls, device: Device, token: DeviceToken) -> Grant:
        return cls(
            device_id=str(device.id),
            token_id=str(token.id),
            capabilities=tuple(device.capabilities),
            issued_at=token.issued_at,
            expires_at=token.expires_at,
        )


@dataclass(frozen=True, slots=True)
class _Verified:
    token_hash: str
    secret_hash: str
    installation_id: str | None
    grant: Grant


class VerifiedPairs:
    def __init__(self, *, size: int, ttl: float) -> None:
        if ttl >= REVOCATION_MEMORY.total_seconds():
            raise ValueError("verified pairs must be forgotten before their revocations are")
        self._entries: TTLCache[str, _Verified] = TTLCache(maxsize=max(1, size), ttl=ttl)
        self.enabled = size > 0 and ttl > 0

    async def grant(
        self,
        shape: re.Pattern[str],
        device_token: str,
        device_secret: str,
        installation_id: str | None,
        presence: PresenceStore,
    ) -> Grant | None:
        """The kept grant for this pair if it still holds, else None (ask the database)."""
        match = shape.fullmatch(device_token) if self.enabled else None
        kept = self._entries.get(match.group(1)) if match else None
        if kept is None:
            return None
        token_ok = matches(kept.token_hash, sha256_hex(device_token))
        secret_ok = matches(kept.secret_hash, sha256_hex(device_secret))
        if not (token_ok and secret_ok):
            return None
        if installation_id is not None and installation_id != kept.installation_id:
            return None
        if clock.now() >= kept.grant.expires_at:
            return None
        if await presence.is_revoked(kept.grant.token_id):
            return None
        return kept.grant

    def remember(self, device: Device, token: DeviceToken) -> Grant:
        """Keep a pair the database has just found valid; returns its grant."""
        grant = Grant.of(device, token)
        if self.enabled:
            self._entries[token.lookup_id] = _Verified(
                token_hash=token.token_hash,
                secret_hash=token.secret_hash,
                installation_id=token.installation_id,
                grant=grant,
            )
        return grant
