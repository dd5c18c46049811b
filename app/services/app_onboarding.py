"""Admin mobile app onboarding (DESIGN §6): a QR code from the console, exchanged once by the
app for an access token and a rotating refresh token; the admin's connected devices; cleanup.

The QR token is single use by the database's word: the exchange is a conditional write that
re-checks state and expiry in the statement itself, in the transaction that creates the
device, its refresh token and the audit row. A token dies with the console session that
showed it: signing out cancels it, and the exchange refuses one whose session has ended.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from tortoise.transactions import in_transaction

from app import clock
from app.auth.hashing import new_token, sha256_hex
from app.auth.ratelimit import RateLimiter
from app.errors import (
    CodeExpired,
    Conflict,
    DomainError,
    InvalidCode,
    NotFound,
    RateLimited,
    StaleState,
)
from app.logging import get_logger
from app.models import (
    AuditAction,
    ConsoleSession,
    Device,
    EventType,
    Kind,
    PairingSession,
    User,
)
from app.presence import PresenceStore
from app.services import app_credentials, audit, console_sessions, events, refusals
from app.services.app_credentials import AppTokens
from app.services.devices import with_presence
from app.services.pairing_sessions import effective_state, session_entry
from app.services.transitions import fire
from app.settings import Settings
from statemachines import DeadlinePassed, PairingSessionMachine, PairingState

log = get_logger(__name__)

# 256 bits: what ASVS asks of a one-time token (a UUID's 122 are below it).
QR_TOKEN_BYTES = 32


@dataclass(frozen=True)
class GeneratedQr:
    """The token exists in clear only here, on its way into the QR code."""

    session: PairingSession
    token: str

    def __repr__(self) -> str:
        return f"GeneratedQr(session={self.session.id}, token=***)"


@dataclass(frozen=True, slots=True)
class AppDetails:
    name: str
    platform: str
    identifier: str


def _token_hash(token: str) -> str:
    return sha256_hex("app-qr:" + token)


def _ttl(settings: Settings) -> timedelta:
    return timedelta(seconds=settings.app_qr_ttl_seconds)


async def generate_qr(
    *, admin: User, console_session: ConsoleSession, ip: str | None, settings: Settings
) -> GeneratedQr:
    """A new token; older unexpired ones stay valid until used, cancelled or signed out."""
    now = clock.now()
    token = new_token(QR_TOKEN_BYTES)
    async with in_transaction() as connection:
        session = await PairingSession.create(
            kind=Kind.ADMIN_APP,
            code_hash=_token_hash(token),
            created_by=admin,
            console_session=console_session,
            created_at=now,
            expires_at=now + _ttl(settings),
            using_db=connection,
        )
        await audit.record(
            session_entry(
                AuditAction.APP_QR_GENERATED,
                session,
                audit.Actor.user(admin.id, ip),
                expiresAtIso=session.expires_at.isoformat(),
            ),
            using_db=connection,
        )
    return GeneratedQr(session, token)


async def _own_session(session_id: UUID, admin: User) -> PairingSession:
    session = await PairingSession.get_or_none(
        id=session_id, kind=Kind.ADMIN_APP, created_by_id=admin.id
    )
    if session is None:
        raise NotFound("No such QR code.")
    return session


@dataclass(frozen=True, slots=True)
class QrStatus:
    session: PairingSession
    state: PairingState
    # The app connected with it, once it is redeemed.
    device: Device | None


async def qr_status(*, session_id: UUID, admin: User) -> QrStatus:
    session = await _own_session(session_id, admin)
    state = effective_state(session, clock.now())
    device = None
    if state == PairingState.redeemed and session.device_id is not None:
        device = await Device.get_or_none(id=session.device_id)
    return QrStatus(session, state, device)


async def cancel(*, session_id: UUID, admin: User, ip: str | None) -> PairingSession:
    session = await _own_session(session_id, admin)
    now = clock.now()
    if effective_state(session, now) != PairingState.minted:
        raise Conflict("This QR code is no longer valid.")
    try:
        return await fire(
            session,
            PairingSessionMachine,
            "cancel",
            now=now,
            changes={"resolved_at": now},
            entry=session_entry(
                AuditAction.APP_QR_CANCELLED,
                session,
                audit.Actor.user(admin.id, ip),
                reason="admin",
            ),
        )
    except (StaleState, DeadlinePassed):
        raise Conflict("This QR code is no longer valid.") from None


async def cancel_for_console_session(*, console_session: ConsoleSession, ip: str | None) -> int:
    """Signing out kills the QR codes that session showed and nobody has used yet."""
    now = clock.now()
    unused = await PairingSession.filter(
        kind=Kind.ADMIN_APP,
        console_session_id=console_session.id,
        state=PairingState.minted,
        expires_at__gt=now,
    )
    cancelled = 0
    for session in unused:
        with contextlib.suppress(StaleState):
            await fire(
                session,
                PairingSessionMachine,
                "cancel",
                now=now,
                changes={"resolved_at": now},
                entry=session_entry(
                    AuditAction.APP_QR_CANCELLED,
                    session,
                    audit.Actor.user(console_session.user_id, ip),
                    reason="signed_out",
                ),
            )
            cancelled += 1
    return cancelled


async def _issuer_signed_in(session: PairingSession, now: datetime, settings: Settings) -> bool:
    """The console session that showed the code is still open, and its admin still active."""
    console = await ConsoleSession.get_or_none(id=session.console_session_id).select_related("user")
    if console is None or console.ended_at is not None or not console.user.is_active:
        return False
    return not console_sessions.timed_out(console, now, settings)


_PER_IP = "app-exchange-ip"
_GLOBAL = "app-exchange-global"


async def _note_failure(
    failure: DomainError,
    session: PairingSession | None,
    ip: str | None,
    *,
    conceal: bool,
    limiter: RateLimiter,
    settings: Settings,
) -> DomainError:
    """Spend the address's budget and record the failure; returns the error to answer."""
    await limiter.spend(settings.redeem_failures_per_ip, _PER_IP, ip or "unknown")
    if session is None:
        log.info("app_exchange_failed", reason=failure.code, ip=ip)
    else:
        # A known token coming back (used, expired, signed out) may be a photographed QR code.
        await audit.record(
            session_entry(
                AuditAction.APP_EXCHANGE_FAILED,
                session,
                audit.Actor.device(ip=ip),
                reason=failure.code,
            )
        )
    if conceal:
        return RateLimited(await limiter.retry_after(settings.redeem_failures_global, _GLOBAL))
    return failure


async def exchange(
    *,
    token: str,
    details: AppDetails,
    ip: str | None,
    limiter: RateLimiter,
    settings: Settings,
    presence: PresenceStore,
) -> AppTokens:
    """Every token evaluated takes a unit of the budget over all clients first. A token is
    256 bits, so even a spent budget lets a genuine QR code connect: past it, only the
    failures answer 429 (and say nothing about the token)."""
    await limiter.ensure_allowed(settings.redeem_failures_per_ip, _PER_IP, ip or "unknown")
    within_budget = await limiter.acquire(settings.redeem_failures_global, _GLOBAL)
    now = clock.now()
    session = await PairingSession.get_or_none(code_hash=_token_hash(token), kind=Kind.ADMIN_APP)
    failure: DomainError | None = None
    if session is None:
        failure = InvalidCode("This QR code is not valid.")
    elif (state := effective_state(session, now)) != PairingState.minted:
        failure = refusals.refusal(refusals.APP_EXCHANGE, state)
    elif not await _issuer_signed_in(session, now, settings):
        failure = CodeExpired(
            "The console session that showed this QR code has ended; generate a new one."
        )
    if failure is not None:
        raise await _note_failure(
            failure, session, ip, conceal=not within_budget, limiter=limiter, settings=settings
        )
    assert session is not None
    try:
        issued = await _connect(session, details, ip, now, settings)
    except (StaleState, DeadlinePassed):
        # Lost the race to another exchange (or a sign-out), or the deadline just passed.
        await session.refresh_from_db()
        failure = refusals.refusal(refusals.APP_EXCHANGE, effective_state(session, now))
        # The token was right: the true reason tells its holder nothing new.
        raise await _note_failure(
            failure, session, ip, conceal=False, limiter=limiter, settings=settings
        ) from None
    presence.record_heartbeat(str(issued.device.id), now.timestamp())
    return issued


async def _connect(
    session: PairingSession, details: AppDetails, ip: str | None, now: datetime, settings: Settings
) -> AppTokens:
    owner = await User.get(id=session.created_by_id)
    async with in_transaction() as connection:
        await fire(
            session,
            PairingSessionMachine,
            "redeem",
            now=now,
            where={"expires_at__gt": now},
            changes={"resolved_at": now},
            using_db=connection,
        )
        device = await Device.create(
            kind=Kind.ADMIN_APP,
            label=details.name,
            platform=details.platform,
            device_identifier=details.identifier,
            owner=owner,
            registered_at=now,
            last_seen_at=now,
            last_ip=ip,
            using_db=connection,
        )
        await PairingSession.filter(id=session.id).using_db(connection).update(device_id=device.id)
        issued = await app_credentials.issue(
            device=device, now=now, ttl=app_credentials.refresh_ttl(settings), using_db=connection
        )
        await audit.record(
            audit.Entry(
                action=AuditAction.APP_DEVICE_CONNECTED,
                actor=audit.Actor.user(owner.id, ip),
                target_type="device",
                target_id=str(device.id),
                metadata={
                    "deviceId": str(device.id),
                    "deviceName": details.name,
                    "platform": details.platform,
                    "deviceIdentifier": details.identifier,
                    "pairingSessionId": str(session.id),
                    "tokenId": str(issued.token.id),
                },
            ),
            using_db=connection,
        )
        await events.emit(
            EventType.APP_DEVICE_CONNECTED,
            {
                "deviceId": str(device.id),
                "deviceName": details.name,
                "platform": details.platform,
                "ownerId": str(owner.id),
                "atIso": events.iso(now),
            },
            using_db=connection,
        )
    return issued


async def list_devices(*, owner: User, presence: PresenceStore) -> list[Device]:
    """The admin's connected apps, newest first, with last-active times from the store."""
    devices = await Device.filter(kind=Kind.ADMIN_APP, owner_id=owner.id, deleted_at=None).order_by(
        "-registered_at"
    )
    return await with_presence(devices, presence)


async def revoke(
    *, device_id: UUID, admin: User, ip: str | None, presence: PresenceStore
) -> Device:
    """Immediate: the refresh token is dead and every access token fails its next request."""
    device = await Device.get_or_none(id=device_id, kind=Kind.ADMIN_APP, owner_id=admin.id)
    if device is None:
        raise NotFound("No such connected device.")
    try:
        return await app_credentials.revoke_device(
            device,
            action=AuditAction.APP_DEVICE_REVOKED,
            actor=audit.Actor.user(admin.id, ip),
            reason="admin",
            presence=presence,
        )
    except StaleState:
        raise Conflict("This device's access was already revoked.") from None
