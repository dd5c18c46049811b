"""The typed-code path (DESIGN §4): a device that typed the code waits in
`pending_approval`; only the admin who minted the code approves, rejects or cancels it, and
the approved device collects its credentials exactly once by polling (RFC 8628 style)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from tortoise.transactions import in_transaction

from app import clock
from app.auth import pkce
from app.errors import (
    AuthorizationPending,
    DomainError,
    ExpiredToken,
    Forbidden,
    InvalidCode,
    InvalidInput,
    NotFound,
    SessionBurned,
    SlowDown,
    StaleState,
)
from app.models import AuditAction, EventType, Kind, PairingSession, User
from app.services import audit, events, pairing_attempts, pairing_codes, refusals
from app.services.credentials import DeviceDetails, IssuedCredentials
from app.services.pairing_attempts import Client, Outcome
from app.services.pairing_sessions import (
    code_ttl,
    count_outcome,
    count_refusal,
    count_wrong_proof,
    effective_state,
    register_paired_device,
    session_entry,
)
from app.services.transitions import fire
from app.settings import Settings
from statemachines import DeadlinePassed, PairingSessionMachine, PairingState

_NOTHING_WAITING = "No pairing is waiting under this id."


@dataclass(frozen=True)
class PendingApproval:
    session: PairingSession
    check_code: str
    interval: int


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


async def claim(
    session: PairingSession,
    *,
    device_challenge: str,
    details: DeviceDetails,
    ip: str | None,
    now: datetime,
    settings: Settings,
) -> PendingApproval:
    """Park the device on the session until the minting admin decides."""
    check_code = pairing_codes.check_code(device_challenge)
    async with in_transaction() as connection:
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
                AuditAction.PAIRING_CLAIMED,
                session,
                audit.Actor.device(ip=ip),
                label=details.label,
                platform=details.platform,
                model=details.model,
            ),
            using_db=connection,
        )
        await events.emit(
            EventType.PAIRING_PENDING_APPROVAL,
            {
                "pairingSessionId": str(session.id),
                "label": details.label,
                "platform": details.platform,
                "model": details.model,
                "checkCode": check_code,
                "ownerId": str(session.created_by_id),
                "expiresAtIso": events.iso(session.expires_at),
                "atIso": events.iso(now),
            },
            using_db=connection,
        )
    return PendingApproval(session, check_code, settings.pairing_poll_interval_seconds)


async def poll(
    *,
    pairing_id: UUID,
    code_verifier: str,
    ip: str | None,
    user_agent: str | None,
    settings: Settings,
) -> IssuedCredentials:
    """RFC 8628-style polling; the approved device collects its credentials exactly once.

    Every refusal of an existing session is kept as one of its attempts, except "not yet"
    (`authorization_pending`, `slow_down`): that is the waiting device itself."""
    client = Client(ip=ip, user_agent=user_agent)
    try:
        issued = await _poll(pairing_id, code_verifier, client, settings)
    except DomainError as exc:
        count_refusal(exc)
        raise
    count_outcome("collected")
    return issued


async def _poll(
    pairing_id: UUID, code_verifier: str, client: Client, settings: Settings
) -> IssuedCredentials:
    now = clock.now()
    session = await PairingSession.get_or_none(id=pairing_id, kind=Kind.SCANNER)
    if session is None:
        raise InvalidCode(_NOTHING_WAITING)
    outcome = Outcome.REFUSED
    try:
        if session.device_challenge is None:
            raise InvalidCode(_NOTHING_WAITING)
        if session.state == PairingState.burned:
            raise SessionBurned
        if not pkce.verifier_matches(code_verifier, session.device_challenge):
            failure, outcome = await count_wrong_proof(session, now)
            raise failure
        return await _answer(session, client, now, settings)
    except (AuthorizationPending, SlowDown):
        raise
    except DomainError as exc:
        async with in_transaction() as connection:
            await pairing_attempts.record(
                session_id=session.id,
                outcome=outcome,
                reason=exc.code,
                client=client,
                at=now,
                using_db=connection,
            )
        raise


async def _answer(
    session: PairingSession, client: Client, now: datetime, settings: Settings
) -> IssuedCredentials:
    """What a poll with the right verifier gets."""
    state = effective_state(session, now)
    if state == PairingState.pending_approval:
        await _note_poll(session, now, settings)
    if state != PairingState.redeemed or session.device_id is not None:
        raise refusals.refusal(refusals.POLL, state)
    assert session.resolved_at is not None
    if now >= session.resolved_at + code_ttl(settings):
        raise ExpiredToken("The approval was not collected in time; pair again.")
    return await _collect(session, client.ip, now, settings)


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
    async with in_transaction() as connection:
        return await register_paired_device(
            session, details=details, ip=ip, now=now, settings=settings, using_db=connection
        )


async def _session_for_admin(session_id: UUID, admin: User) -> PairingSession:
    session = await PairingSession.get_or_none(id=session_id, kind=Kind.SCANNER)
    if session is None:
        raise NotFound("No such pairing session.")
    if session.created_by_id != admin.id:
        raise Forbidden("Only the admin who minted this code can decide on it.")
    return session


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
        approved = await fire(
            session,
            PairingSessionMachine,
            "approve",
            now=now,
            where={"expires_at__gt": now},
            changes={"resolved_at": now, "pending_device": pending},
            entry=session_entry(
                AuditAction.PAIRING_APPROVED,
                session,
                audit.Actor.user(admin.id, ip),
                capabilities=granted,
            ),
        )
    except (StaleState, DeadlinePassed):
        await session.refresh_from_db()
        raise refusals.refusal(refusals.DECIDE, effective_state(session, now)) from None
    count_outcome("approved")
    return approved


async def _decide(
    session_id: UUID, admin: User, event: str, action: AuditAction, ip: str | None
) -> PairingSession:
    session = await _session_for_admin(session_id, admin)
    now = clock.now()
    try:
        return await fire(
            session,
            PairingSessionMachine,
            event,
            now=now,
            where={"expires_at__gt": now},
            changes={"resolved_at": now},
            entry=session_entry(action, session, audit.Actor.user(admin.id, ip)),
        )
    except (StaleState, DeadlinePassed):
        await session.refresh_from_db()
        raise refusals.refusal(refusals.DECIDE, effective_state(session, now)) from None


async def reject(*, session_id: UUID, admin: User, ip: str | None) -> PairingSession:
    rejected = await _decide(session_id, admin, "reject", AuditAction.PAIRING_REJECTED, ip)
    count_outcome("rejected")
    return rejected


async def cancel(*, session_id: UUID, admin: User, ip: str | None) -> PairingSession:
    return await _decide(session_id, admin, "cancel", AuditAction.PAIRING_CANCELLED, ip)
