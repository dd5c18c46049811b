"""What every pairing protocol shares: a session's state as the clock sees it, its audit
entries, wrong proofs counted towards burning it, and the sweep that catches rows up."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.expressions import F

from app.errors import CodeAlreadyUsed, DomainError, InvalidProof, SessionBurned, StaleState
from app.metrics import PAIRING_OUTCOMES
from app.models import AuditAction, EventType, Kind, PairingSession
from app.services import audit, credentials, events
from app.services.credentials import DeviceDetails, IssuedCredentials
from app.services.pairing_attempts import Outcome
from app.services.transitions import fire
from app.settings import Settings
from statemachines import (
    MAX_FAILED_PROOFS,
    DeadlineNotReached,
    PairingSessionMachine,
    PairingState,
)

# A tuple, for `state__in` queries as well as membership tests.
OPEN_STATES = tuple(sorted(PairingSessionMachine.open_states()))
# Answers that tell a device "not yet", not how its attempt ended.
_NOT_AN_OUTCOME = frozenset({"authorization_pending", "slow_down"})


def count_outcome(reason: str) -> None:
    """Count how a pairing attempt or decision ended (`polaris_pairing_outcomes`)."""
    PAIRING_OUTCOMES.labels(reason).inc()


def count_refusal(error: DomainError) -> None:
    """Count a refused attempt under its stable problem code."""
    if error.code not in _NOT_AN_OUTCOME:
        count_outcome(error.code)


def code_ttl(settings: Settings) -> timedelta:
    return timedelta(seconds=settings.pairing_code_ttl_seconds)


def credential_ttl(settings: Settings) -> timedelta:
    return timedelta(days=settings.device_credential_ttl_days)


def effective_state(session: PairingSession, now: datetime) -> PairingState:
    """Expiry is a fact of the clock; the sweep job only catches the row up with it."""
    if session.state in OPEN_STATES and now >= session.expires_at:
        return PairingState.expired
    return session.state


def session_entry(
    action: AuditAction, session: PairingSession, actor: audit.Actor, **metadata: Any
) -> audit.Entry:
    """An audit entry about a pairing session (scanner or admin app)."""
    return audit.Entry(
        action=action,
        actor=actor,
        target_type="pairing_session",
        target_id=str(session.id),
        metadata={"pairingSessionId": str(session.id), **metadata},
    )


# How a new device's session comes to point at it, in the registration's transaction.
Link = Callable[[PairingSession, UUID, BaseDBAsyncClient], Awaitable[None]]


async def link_redeemed(
    session: PairingSession, device_id: UUID, using_db: BaseDBAsyncClient
) -> None:
    """Point a session redeemed before (a typed code, approved) at its device; a session
    linked already raises `CodeAlreadyUsed`, which rolls the new device back: a racing
    request paired first."""
    linked = (
        await PairingSession.filter(id=session.id, state=PairingState.redeemed, device_id=None)
        .using_db(using_db)
        .update(device_id=device_id)
    )
    if linked != 1:
        raise CodeAlreadyUsed
    session.device_id = device_id


async def register_paired_device(
    session: PairingSession,
    *,
    details: DeviceDetails,
    ip: str | None,
    now: datetime,
    settings: Settings,
    using_db: BaseDBAsyncClient,
    link: Link = link_redeemed,
) -> IssuedCredentials:
    """Create the device a session pairs, owned by the admin who minted the code, and
    `link` the two, in the caller's transaction. The device is written first so that the
    link can be the session's own transition (one statement), and whatever `link` raises
    rolls the device back with the rest."""
    owner_id = session.created_by_id
    issued = await credentials.register_device(
        details=details,
        owner_id=owner_id,
        actor=audit.Actor.user(owner_id),
        now=now,
        ttl=credential_ttl(settings),
        ip=ip,
        using_db=using_db,
    )
    await link(session, issued.device.id, using_db)
    await events.emit(
        EventType.DEVICE_REGISTERED,
        {
            "deviceId": str(issued.device.id),
            "label": issued.device.label,
            "platform": issued.device.platform,
            "model": issued.device.model,
            "ownerId": str(owner_id),
            "pairingSessionId": str(session.id),
            "tokenId": str(issued.token.id),
            "expiresAtIso": events.iso(issued.token.expires_at),
            "atIso": events.iso(now),
        },
        using_db=using_db,
    )
    return issued


async def count_wrong_proof(session: PairingSession, now: datetime) -> tuple[DomainError, Outcome]:
    """Count a wrong proof; the fifth burns the session. Returns the error to answer, and
    whether this proof is the one that burned it."""
    await PairingSession.filter(id=session.id, state__in=OPEN_STATES).update(
        failed_attempts=F("failed_attempts") + 1
    )
    await session.refresh_from_db(fields=["failed_attempts", "state"])
    if session.failed_attempts < MAX_FAILED_PROOFS:
        return InvalidProof(), Outcome.REFUSED
    try:
        await fire(
            session,
            PairingSessionMachine,
            "burn",
            changes={"resolved_at": now},
            entry=session_entry(
                AuditAction.PAIRING_BURNED,
                session,
                audit.Actor.system(),
                failedAttempts=MAX_FAILED_PROOFS,
            ),
        )
    except StaleState:
        # A racing request burned it first; burned it is, all the same.
        return SessionBurned(), Outcome.REFUSED
    count_outcome("burned")
    return SessionBurned(), Outcome.BURNED


async def expire_overdue(*, now: datetime, limit: int = 500) -> int:
    """Catch rows up with the clock: unfinished sessions past their TTL become `expired`.

    Redemption never relies on this (it checks expiry itself); a second worker running the
    same sweep loses each conditional write and skips the row.
    """
    overdue = await PairingSession.filter(state__in=OPEN_STATES, expires_at__lte=now).limit(limit)
    expired = 0
    for session in overdue:
        with contextlib.suppress(StaleState, DeadlineNotReached):
            await fire(
                session,
                PairingSessionMachine,
                "expire",
                now=now,
                where={"expires_at__lte": now},
                changes={"resolved_at": now},
                entry=session_entry(
                    AuditAction.PAIRING_EXPIRED,
                    session,
                    audit.Actor.system(),
                    kind=session.kind.value,
                ),
            )
            expired += 1
            if session.kind is Kind.SCANNER:
                count_outcome("expired")
    return expired
