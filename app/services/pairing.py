"""Scanner pairing (DESIGN §4): mint a one-time code, redeem it by QR or by typed code.

Single use is the database's job: every move is a conditional write that re-checks the
state (and, for redemption, the expiry against the clock) in the statement itself, in the
transaction that creates the device, its credentials and the audit rows.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from tortoise.exceptions import IntegrityError
from tortoise.expressions import F
from tortoise.transactions import in_transaction

from app import clock
from app.auth import pkce
from app.auth.hashing import keyed_hash
from app.auth.ratelimit import RateLimiter
from app.models import PairingSession, User
from app.models.pairing_session import PairingKind
from app.services import audit, credentials, pairing_codes
from app.services.credentials import DeviceDetails, IssuedCredentials
from app.services.errors import (
    AccessDenied,
    AuthorizationPending,
    CodeAlreadyUsed,
    CodeExpired,
    Conflict,
    DomainError,
    ExpiredToken,
    Forbidden,
    InvalidCode,
    InvalidInput,
    InvalidProof,
    NotFound,
    SessionBurned,
    SlowDown,
    StaleState,
)
from app.services.transitions import fire
from app.settings import Settings
from statemachines import (
    MAX_FAILED_PROOFS,
    DeadlineNotReached,
    DeadlinePassed,
    PairingSessionMachine,
    TransitionNotAllowed,
)

_MINT_ATTEMPTS = 3


@dataclass(frozen=True)
class MintedCode:
    """The code and the console proof exist in clear only here, on their way to the admin."""

    session: PairingSession
    code: str
    pairing_uri: str

    def __repr__(self) -> str:
        return f"MintedCode(session={self.session.id}, code=***)"


@dataclass(frozen=True)
class PendingApproval:
    session: PairingSession
    check_code: str
    interval: int


def _code_hash(settings: Settings, code: str) -> str:
    return keyed_hash(settings.secret, "pairing-code:" + code)


def _ttl(settings: Settings) -> timedelta:
    return timedelta(seconds=settings.pairing_code_ttl_seconds)


def _credential_ttl(settings: Settings) -> timedelta:
    return timedelta(days=settings.device_credential_ttl_days)


def _admin(user: User, ip: str | None) -> audit.Actor:
    return audit.Actor(type="user", id=str(user.id), ip=ip)


def session_entry(
    action: str, session: PairingSession, actor: audit.Actor, **metadata: Any
) -> audit.Entry:
    """An audit entry about a pairing session (scanner or admin app)."""
    return audit.Entry(
        action=action,
        actor=actor,
        target_type="pairing_session",
        target_id=str(session.id),
        metadata={"pairingSessionId": str(session.id), **metadata},
    )


def effective_state(session: PairingSession, now: datetime) -> str:
    """Expiry is a fact of the clock; the sweep job only catches the row up with it."""
    if session.state in ("minted", "pending_approval") and now >= session.expires_at:
        return "expired"
    return session.state


async def mint(*, admin: User, ip: str | None, settings: Settings) -> MintedCode:
    now = clock.now()
    proof = pkce.new_verifier()
    for attempt in range(_MINT_ATTEMPTS):
        code = pairing_codes.new_code()
        try:
            async with in_transaction() as connection:
                session = await PairingSession.create(
                    kind=PairingKind.SCANNER,
                    code_hash=_code_hash(settings, code),
                    proof_challenge=pkce.challenge_for(proof),
                    created_by=admin,
                    created_at=now,
                    expires_at=now + _ttl(settings),
                    using_db=connection,
                )
                await audit.record(
                    session_entry(
                        "pairing.code.minted",
                        session,
                        _admin(admin, ip),
                        kind=PairingKind.SCANNER.value,
                        expiresAtIso=session.expires_at.isoformat(),
                    ),
                    using_db=connection,
                )
        except IntegrityError:
            # 40-bit codes collide with an old session's hash once in a blue moon.
            if attempt == _MINT_ATTEMPTS - 1:
                raise
            continue
        uri = pairing_codes.pairing_uri(code=code, proof=proof, origin=settings.public_base_url)
        return MintedCode(session, code, uri)
    raise AssertionError("unreachable")


def _refusal(session: PairingSession, now: datetime) -> DomainError:
    """Why this session cannot be redeemed now, in the protocol's words."""
    state = effective_state(session, now)
    if state in ("redeemed", "pending_approval"):
        return CodeAlreadyUsed()
    if state == "expired":
        return CodeExpired()
    if state == "burned":
        return SessionBurned()
    if state == "rejected":
        return AccessDenied()
    return InvalidCode()


async def _note_failure(
    *,
    reason: str,
    session: PairingSession | None,
    ip: str | None,
    limiter: RateLimiter,
    settings: Settings,
) -> None:
    await limiter.spend(settings.redeem_failures_per_ip, "redeem-ip", ip or "unknown")
    await limiter.spend(settings.redeem_failures_global, "redeem-global")
    await audit.record(
        audit.Entry(
            action="pairing.redeem_failed",
            actor=audit.Actor(type="device", ip=ip),
            target_type="pairing_session" if session else None,
            target_id=str(session.id) if session else None,
            metadata={"reason": reason},
        )
    )


async def _count_wrong_proof(session: PairingSession, now: datetime) -> DomainError:
    """Count a wrong proof; the fifth burns the session. Returns the error to answer."""
    await PairingSession.filter(id=session.id, state__in=("minted", "pending_approval")).update(
        failed_attempts=F("failed_attempts") + 1
    )
    await session.refresh_from_db(fields=["failed_attempts", "state"])
    if session.failed_attempts < MAX_FAILED_PROOFS:
        return InvalidProof()
    # A racing request may have burned it first; either way it is burned now.
    with contextlib.suppress(StaleState, TransitionNotAllowed):
        await fire(
            session,
            PairingSessionMachine,
            "burn",
            changes={"resolved_at": now},
            entry=session_entry(
                "pairing.burned", session, audit.Actor.system(), failedAttempts=MAX_FAILED_PROOFS
            ),
        )
    return SessionBurned()


async def register(
    *,
    code: str,
    device_challenge: str,
    details: DeviceDetails,
    proof: str | None,
    ip: str | None,
    limiter: RateLimiter,
    settings: Settings,
) -> IssuedCredentials | PendingApproval:
    """Scanned (valid proof): credentials at once. Typed (no proof): pending approval."""
    await limiter.ensure_allowed(settings.redeem_failures_per_ip, "redeem-ip", ip or "unknown")
    await limiter.ensure_allowed(settings.redeem_failures_global, "redeem-global")
    now = clock.now()
    session = await PairingSession.get_or_none(
        code_hash=_code_hash(settings, code), kind=PairingKind.SCANNER
    )
    failure: DomainError | None = None
    if session is None:
        failure = InvalidCode()
    elif effective_state(session, now) != "minted":
        failure = _refusal(session, now)
    elif proof is not None and not pkce.verifier_matches(proof, session.proof_challenge or ""):
        failure = await _count_wrong_proof(session, now)
    if failure is not None:
        await _note_failure(
            reason=failure.code, session=session, ip=ip, limiter=limiter, settings=settings
        )
        raise failure
    assert session is not None
    try:
        if proof is not None:
            return await _redeem(session, device_challenge, details, ip, now, settings)
        return await _claim(session, device_challenge, details, ip, now, settings)
    except (StaleState, TransitionNotAllowed, DeadlinePassed):
        # Lost a race, or the deadline passed between the read and the write.
        await session.refresh_from_db()
        failure = _refusal(session, now) if session.state != "minted" else CodeExpired()
        await _note_failure(
            reason=failure.code, session=session, ip=ip, limiter=limiter, settings=settings
        )
        raise failure from None


async def _redeem(
    session: PairingSession,
    device_challenge: str,
    details: DeviceDetails,
    ip: str | None,
    now: datetime,
    settings: Settings,
) -> IssuedCredentials:
    owner = await User.get(id=session.created_by_id)  # type: ignore[attr-defined]
    async with in_transaction() as connection:
        await fire(
            session,
            PairingSessionMachine,
            "redeem",
            now=now,
            where={"expires_at__gt": now},
            changes={"resolved_at": now, "device_challenge": device_challenge},
            using_db=connection,
        )
        issued = await credentials.register_device(
            details=details,
            owner=owner,
            actor=_admin(owner, None),
            now=now,
            ttl=_credential_ttl(settings),
            ip=ip,
            using_db=connection,
        )
        await (
            PairingSession.filter(id=session.id)
            .using_db(connection)
            .update(device_id=issued.device.id)
        )
    return issued


def _pending_device(details: DeviceDetails, ip: str | None, check_code: str) -> dict[str, Any]:
    return {
        "label": details.label,
        "platform": details.platform,
        "model": details.model,
        "osVersion": details.os_version,
        "appVersion": details.app_version,
        "apnsEnvironment": details.apns_environment,
        "capabilities": list(details.capabilities),
        "pushToken": details.push_token,
        "ip": ip,
        "checkCode": check_code,
    }


async def _claim(
    session: PairingSession,
    device_challenge: str,
    details: DeviceDetails,
    ip: str | None,
    now: datetime,
    settings: Settings,
) -> PendingApproval:
    check_code = pairing_codes.check_code(device_challenge)
    await fire(
        session,
        PairingSessionMachine,
        "claim",
        now=now,
        where={"expires_at__gt": now},
        changes={
            "device_challenge": device_challenge,
            "pending_device": _pending_device(details, ip, check_code),
        },
        entry=session_entry(
            "pairing.claimed",
            session,
            audit.Actor(type="device", ip=ip),
            label=details.label,
            platform=details.platform,
            model=details.model,
        ),
    )
    return PendingApproval(session, check_code, settings.pairing_poll_interval_seconds)


async def poll(
    *, pairing_id: UUID, code_verifier: str, ip: str | None, settings: Settings
) -> IssuedCredentials:
    """RFC 8628-style polling; the approved device collects its credentials exactly once."""
    now = clock.now()
    session = await PairingSession.get_or_none(id=pairing_id, kind=PairingKind.SCANNER)
    if session is None or session.device_challenge is None:
        raise InvalidCode("No pairing is waiting under this id.")
    if session.state == "burned":
        raise SessionBurned
    if not pkce.verifier_matches(code_verifier, session.device_challenge):
        raise await _count_wrong_proof(session, now)
    state = effective_state(session, now)
    if state == "pending_approval":
        await _note_poll(session, now, settings)
    if state == "rejected":
        raise AccessDenied
    if state in ("expired", "cancelled"):
        raise ExpiredToken
    if state != "redeemed" or session.device_id is not None:  # type: ignore[attr-defined]
        raise CodeAlreadyUsed
    assert session.resolved_at is not None
    if now >= session.resolved_at + _ttl(settings):
        raise ExpiredToken("The approval was not collected in time; pair again.")
    return await _collect(session, ip, now, settings)


async def _note_poll(session: PairingSession, now: datetime, settings: Settings) -> None:
    interval = timedelta(seconds=settings.pairing_poll_interval_seconds)
    too_soon = session.last_polled_at is not None and now - session.last_polled_at < interval
    await PairingSession.filter(id=session.id).update(last_polled_at=now)
    raise SlowDown if too_soon else AuthorizationPending


async def _collect(
    session: PairingSession, ip: str | None, now: datetime, settings: Settings
) -> IssuedCredentials:
    pending = session.pending_device or {}
    details = DeviceDetails(
        label=pending["label"],
        platform=pending["platform"],
        model=pending["model"],
        os_version=pending["osVersion"],
        app_version=pending["appVersion"],
        apns_environment=pending["apnsEnvironment"],
        capabilities=tuple(pending.get("approvedCapabilities") or pending["capabilities"]),
        push_token=pending["pushToken"],
    )
    owner = await User.get(id=session.created_by_id)  # type: ignore[attr-defined]
    async with in_transaction() as connection:
        issued = await credentials.register_device(
            details=details,
            owner=owner,
            actor=_admin(owner, None),
            now=now,
            ttl=_credential_ttl(settings),
            ip=ip,
            using_db=connection,
        )
        collected = (
            await PairingSession.filter(id=session.id, state="redeemed", device_id=None)
            .using_db(connection)
            .update(device_id=issued.device.id)
        )
        if collected != 1:
            raise CodeAlreadyUsed  # rolls the device back: a racing poll collected first
    return issued


async def _session_for_admin(session_id: UUID, admin: User) -> PairingSession:
    session = await PairingSession.get_or_none(id=session_id, kind=PairingKind.SCANNER)
    if session is None:
        raise NotFound("No such pairing session.")
    if session.created_by_id != admin.id:  # type: ignore[attr-defined]
        raise Forbidden("Only the admin who minted this code can decide on it.")
    return session


def _not_now(session: PairingSession, now: datetime) -> DomainError:
    state = effective_state(session, now)
    if state == "expired":
        return CodeExpired()
    return Conflict(f"The pairing session is {state.replace('_', ' ')}.")


async def approve(
    *, session_id: UUID, admin: User, capabilities: list[str] | None, ip: str | None
) -> PairingSession:
    session = await _session_for_admin(session_id, admin)
    now = clock.now()
    requested = list((session.pending_device or {}).get("capabilities", []))
    granted = requested if capabilities is None else capabilities
    if not granted or not set(granted) <= set(requested):
        raise InvalidInput(
            "Approve a non-empty subset of the requested capabilities: " + ", ".join(requested),
            field="capabilities",
        )
    pending = {**(session.pending_device or {}), "approvedCapabilities": granted}
    try:
        return await fire(
            session,
            PairingSessionMachine,
            "approve",
            now=now,
            where={"expires_at__gt": now},
            changes={"resolved_at": now, "pending_device": pending},
            entry=session_entry(
                "pairing.approved", session, _admin(admin, ip), capabilities=granted
            ),
        )
    except (StaleState, TransitionNotAllowed, DeadlinePassed):
        await session.refresh_from_db()
        raise _not_now(session, now) from None


async def _decide(
    session_id: UUID, admin: User, event: str, action: str, ip: str | None
) -> PairingSession:
    session = await _session_for_admin(session_id, admin)
    now = clock.now()
    if effective_state(session, now) == "expired":
        raise CodeExpired
    try:
        return await fire(
            session,
            PairingSessionMachine,
            event,
            changes={"resolved_at": now},
            entry=session_entry(action, session, _admin(admin, ip)),
        )
    except (StaleState, TransitionNotAllowed):
        await session.refresh_from_db()
        raise _not_now(session, now) from None


async def reject(*, session_id: UUID, admin: User, ip: str | None) -> PairingSession:
    return await _decide(session_id, admin, "reject", "pairing.rejected", ip)


async def cancel(*, session_id: UUID, admin: User, ip: str | None) -> PairingSession:
    return await _decide(session_id, admin, "cancel", "pairing.cancelled", ip)


async def get(*, session_id: UUID) -> PairingSession:
    session = await PairingSession.get_or_none(id=session_id, kind=PairingKind.SCANNER)
    if session is None:
        raise NotFound("No such pairing session.")
    return session


async def expire_overdue(*, now: datetime, limit: int = 500) -> int:
    """Catch rows up with the clock: unfinished sessions past their TTL become `expired`.

    Redemption never relies on this (it checks expiry itself); a second worker running the
    same sweep loses each conditional write and skips the row.
    """
    overdue = await PairingSession.filter(
        state__in=("minted", "pending_approval"), expires_at__lte=now
    ).limit(limit)
    expired = 0
    for session in overdue:
        with contextlib.suppress(StaleState, TransitionNotAllowed, DeadlineNotReached):
            await fire(
                session,
                PairingSessionMachine,
                "expire",
                now=now,
                where={"expires_at__lte": now},
                changes={"resolved_at": now},
                entry=session_entry(
                    "pairing.expired", session, audit.Actor.system(), kind=session.kind.value
                ),
            )
            expired += 1
    return expired
