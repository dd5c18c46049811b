"""`Idempotency-Key`: the answer to a request is kept so that a retry of it, after a lost
response, gets the same answer instead of acting twice.

A key belongs to one operation. The first request claims it with a row that has no answer
yet; a duplicate arriving meanwhile is refused as in flight, one arriving later with the same
request is answered from the row, and one with a different request is refused as a reuse of
the key. Only the request's keyed hash is kept, and the answer is encrypted under
`SECRET_KEY`: it may carry a fresh credential pair.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar
from uuid import UUID

from cryptography.fernet import Fernet, InvalidToken
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from app import clock
from app.auth.hashing import keyed_hash, matches
from app.auth.sealing import sealer
from app.errors import IdempotencyKeyInFlight, IdempotencyKeyReuse
from app.models import IdempotentAnswer
from app.settings import Settings

# A claim without an answer this old belongs to a request that died with its process; a
# retry may take it over. Longer than any request takes.
ABANDONED_AFTER = timedelta(seconds=60)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    # Empty for an answer without a body.
    body: bytes
    media_type: str


@dataclass(frozen=True, slots=True)
class Claim:
    """The right to act on a key, held by the first request that sent it."""

    answer_id: UUID


def request_digest(settings: Settings, *parts: bytes) -> str:
    """Keyed hash of what identifies a request (method, path, caller, body)."""
    mac = hmac.new(settings.secret.encode(), b"polaris-idempotent-request", hashlib.sha256)
    for part in parts:
        # Length-prefixed, so no two different requests hash the same parts.
        mac.update(len(part).to_bytes(8, "big"))
        mac.update(part)
    return mac.hexdigest()


def _key_hash(settings: Settings, operation: str, key: str) -> str:
    return keyed_hash(settings.secret, f"idempotency-key:{operation}:{key}")


def _fernet(settings: Settings) -> Fernet:
    return sealer(settings.secret, "idempotent-answers")


async def claim(*, operation: str, key: str, request: str, settings: Settings) -> Claim | Answer:
    """Claim `key` for this request, or the answer a former request with it already got.

    Raises `IdempotencyKeyReuse` if the key came with a different request, and
    `IdempotencyKeyInFlight` while the request that claimed it is still being answered.
    """
    key_hash = _key_hash(settings, operation, key)
    now = clock.now()
    for _ in range(2):
        try:
            row = await IdempotentAnswer.create(
                key_hash=key_hash,
                request_hash=request,
                created_at=now,
                expires_at=now + timedelta(seconds=settings.idempotency_ttl_seconds),
            )
            return Claim(row.id)
        except IntegrityError:
            existing = await IdempotentAnswer.get_or_none(key_hash=key_hash)
        if existing is None:
            continue  # Released or expired between the insert and the read.
        if existing.expires_at <= now:
            await IdempotentAnswer.filter(id=existing.id, expires_at__lte=now).delete()
            continue
        if existing.status is None and existing.created_at <= now - ABANDONED_AFTER:
            # Left by a request whose process died: the key is free again, unless its answer
            # was kept since the read.
            await IdempotentAnswer.filter(
                id=existing.id, status__isnull=True, created_at__lte=now - ABANDONED_AFTER
            ).delete()
            continue
        if not matches(existing.request_hash, request):
            raise IdempotencyKeyReuse()
        if existing.status is None or existing.sealed_body is None:
            raise IdempotencyKeyInFlight()
        try:
            body = _fernet(settings).decrypt(existing.sealed_body.encode())
        except InvalidToken:
            # Sealed under a SECRET_KEY since replaced: no answer to give, the key is free.
            await IdempotentAnswer.filter(id=existing.id).delete()
            continue
        return Answer(status=existing.status, body=body, media_type=existing.media_type or "")
    raise IdempotencyKeyInFlight()


async def act_once(
    held: Claim,
    act: Callable[[], Awaitable[T]],
    answer_of: Callable[[T], Answer | None],
    *,
    settings: Settings,
) -> T:
    """Run `act` for the request holding `held`, and keep its answer (`answer_of` says what
    is worth keeping) in the same transaction as everything `act` writes: a retry can never
    find the work done and the answer missing. If `act` fails, its writes are rolled back
    and the key is released for a retry to act anew; so is it after an answer not kept."""
    try:
        async with in_transaction():
            try:
                outcome = await act()
            except Exception as exc:
                raise _RolledBack(exc) from exc
            answer = answer_of(outcome)
            if answer is not None:
                await keep(held, answer, settings=settings)
    except _RolledBack as rolled_back:
        await release(held)
        raise rolled_back.error from None
    # A failed commit leaves the claim in place: whether the work was committed is unknown,
    # so a retry waits for the claim to be abandoned rather than act at once.
    if answer is None:
        await release(held)
    return outcome


class _RolledBack(Exception):
    def __init__(self, error: Exception) -> None:
        super().__init__(type(error).__name__)
        self.error = error


async def keep(held: Claim, answer: Answer, *, settings: Settings) -> None:
    """Keep `answer` for the retries of the request that holds `held`."""
    await IdempotentAnswer.filter(id=held.answer_id).update(
        status=answer.status,
        media_type=answer.media_type,
        sealed_body=_fernet(settings).encrypt(answer.body).decode(),
    )


async def release(held: Claim) -> None:
    """Give the key back: the request got no answer worth repeating, a retry acts anew."""
    await IdempotentAnswer.filter(id=held.answer_id).delete()


async def delete_expired(now: datetime) -> int:
    return await IdempotentAnswer.filter(expires_at__lte=now).delete()
