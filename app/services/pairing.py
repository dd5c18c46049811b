"""Scanner pairing (DESIGN §4): mint a one-time code, and redeem it as the device presents
it: scanned (with the console proof) for credentials at once, or typed (no proof) to wait
for an admin's approval (`pairing_approval`).

Single use is the database's job: every move is a conditional write that re-checks the
state (and, for redemption, the expiry against the clock) in the statement itself, in the
transaction that creates the device, its credentials and the audit rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from app import clock
from app.auth import pkce
from app.auth.hashing import keyed_hash
from app.auth.ratelimit import RateLimiter
from app.errors import (
    DomainError,
    InvalidCode,
    InvalidProof,
    NotFound,
    RateLimited,
    StaleState,
)
from app.models import AuditAction, Kind, PairingSession, User
from app.prepared import PreparedSelect
from app.services import audit, pairing_approval, pairing_attempts, pairing_codes, refusals
from app.services.credentials import DeviceDetails, IssuedCredentials
from app.services.pairing_approval import PendingApproval
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

_MINT_ATTEMPTS = 3
# Every code presented is looked up by its hash: the SQL is built once.
_BY_CODE_HASH = PreparedSelect(
    PairingSession,
    lambda code_hash: PairingSession.filter(code_hash=code_hash, kind=Kind.SCANNER).limit(1),
)


@dataclass(frozen=True)
class MintedCode:
    """The code and the console proof exist in clear only here, on their way to the admin."""

    session: PairingSession
    code: str
    pairing_uri: str

    def __repr__(self) -> str:
        return f"MintedCode(session={self.session.id}, code=***)"


def _code_hash(settings: Settings, code: str) -> str:
    return keyed_hash(settings.secret, "pairing-code:" + code)


async def mint(*, admin: User, ip: str | None, settings: Settings) -> MintedCode:
    now = clock.now()
    proof = pkce.new_verifier()
    for attempt in range(_MINT_ATTEMPTS):
        code = pairing_codes.new_code()
        try:
            async with in_transaction() as connection:
                session = await PairingSession.create(
                    kind=Kind.SCANNER,
                    code_hash=_code_hash(settings, code),
                    proof_challenge=pkce.challenge_for(proof),
                    created_by=admin,
                    created_at=now,
                    expires_at=now + code_ttl(settings),
                    using_db=connection,
                )
                await audit.record(
                    session_entry(
                        AuditAction.PAIRING_CODE_MINTED,
                        session,
                        audit.Actor.user(admin.id, ip),
                        kind=Kind.SCANNER.value,
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


_PER_IP = "redeem-ip"
_GLOBAL = "redeem-global"


async def _note_failure(
    *,
    failure: DomainError,
    session: PairingSession | None,
    client: Client,
    conceal: bool,
    limiter: RateLimiter,
    settings: Settings,
    outcome: Outcome = Outcome.REFUSED,
) -> DomainError:
    """Spend the address's budget, audit the failure and show it to the code's admin as an
    attempt; returns the error to answer."""
    await limiter.spend(settings.redeem_failures_per_ip, _PER_IP, client.ip or "unknown")
    reason = failure.code
    if conceal:
        # Past the budget a failure says only "later": whether the code was right stays
        # unknown, so the attempts the policy still evaluates teach a guesser nothing.
        failure = RateLimited(await limiter.retry_after(settings.redeem_failures_global, _GLOBAL))
    async with in_transaction() as connection:
        await audit.record(
            audit.Entry(
                action=AuditAction.PAIRING_REDEEM_FAILED,
                actor=audit.Actor.device(ip=client.ip),
                target_type="pairing_session" if session else None,
                target_id=str(session.id) if session else None,
                metadata={"reason": reason},
            ),
            using_db=connection,
        )
        # Written for an unknown code too (it inserts nothing): every refusal costs the same.
        # The attempt keeps the answer given (`rate_limited` past the budget), the audit row
        # the reason behind it.
        await pairing_attempts.record(
            session_id=session.id if session else None,
            outcome=outcome,
            reason=failure.code,
            client=client,
            at=clock.now(),
            using_db=connection,
        )
    count_refusal(failure)
    return failure


async def register(
    *,
    code: str,
    device_challenge: str,
    details: DeviceDetails,
    proof: str | None,
    ip: str | None,
    user_agent: str | None,
    limiter: RateLimiter,
    settings: Settings,
) -> IssuedCredentials | PendingApproval:
    """Scanned (valid proof): credentials at once. Typed (no proof): pending approval.

    Every code evaluated takes a unit of the budget over all clients first, success or
    not, so the budget bounds the guesses (`app.auth.guessing`). Once it is spent, typed
    codes are refused unread; a scanned code is still evaluated and pairs when code and
    proof are right (the proof is 256 bits nobody guesses), and any failure answers 429.

    A refusal of a code that matched a session is kept as one of its attempts; one refused
    before the code is read (the address's budget spent, or a typed code past the budget
    over all clients) is not, as finding its session would be the read the refusal saves.
    """
    client = Client(ip=ip, user_agent=user_agent)
    try:
        await limiter.ensure_allowed(settings.redeem_failures_per_ip, _PER_IP, ip or "unknown")
        within_budget = await limiter.acquire(settings.redeem_failures_global, _GLOBAL)
        if not within_budget and proof is None:
            raise RateLimited(await limiter.retry_after(settings.redeem_failures_global, _GLOBAL))
    except RateLimited as exc:
        count_refusal(exc)
        raise
    now = clock.now()
    session = await _BY_CODE_HASH.first(_code_hash(settings, code))
    failure: DomainError | None = None
    outcome = Outcome.REFUSED
    if session is None:
        failure = InvalidCode()
    elif (state := effective_state(session, now)) != PairingState.minted:
        failure = refusals.refusal(refusals.REDEEM, state)
    elif proof is not None and not pkce.verifier_matches(proof, session.proof_challenge or ""):
        # Past the budget a wrong proof is not counted against the session: the extra write
        # would tell, by its time, a right code from a wrong one.
        if within_budget:
            failure, outcome = await count_wrong_proof(session, now)
        else:
            failure = InvalidProof()
    if failure is not None:
        raise await _note_failure(
            failure=failure,
            session=session,
            client=client,
            conceal=not within_budget,
            limiter=limiter,
            settings=settings,
            outcome=outcome,
        )
    assert session is not None
    try:
        if proof is not None:
            issued = await _redeem(session, device_challenge, details, ip, now, settings)
            count_outcome("redeemed")
            return issued
        pending = await pairing_approval.claim(
            session,
            device_challenge=device_challenge,
            details=details,
            ip=ip,
            now=now,
            settings=settings,
        )
        count_outcome("pending_approval")
        return pending
    except (StaleState, DeadlinePassed):
        # Lost a race, or the deadline passed between the read and the write.
        await session.refresh_from_db()
        failure = refusals.refusal(refusals.REDEEM, effective_state(session, now))
        # The code (and any proof) was right: the true reason tells its holder nothing new.
        raise await _note_failure(
            failure=failure,
            session=session,
            client=client,
            conceal=False,
            limiter=limiter,
            settings=settings,
        ) from None


async def _redeem(
    session: PairingSession,
    device_challenge: str,
    details: DeviceDetails,
    ip: str | None,
    now: datetime,
    settings: Settings,
) -> IssuedCredentials:
    async def redeem(row: PairingSession, device_id: UUID, connection: BaseDBAsyncClient) -> None:
        # Redeemed and linked to its device in one conditional write: of racing scans, the
        # one whose write lands pairs, and the others' devices roll back.
        await fire(
            row,
            PairingSessionMachine,
            "redeem",
            now=now,
            where={"expires_at__gt": now, "device_id": None},
            changes={
                "resolved_at": now,
                "device_challenge": device_challenge,
                "device_id": device_id,
            },
            using_db=connection,
        )

    async with in_transaction() as connection:
        return await register_paired_device(
            session,
            details=details,
            ip=ip,
            now=now,
            settings=settings,
            using_db=connection,
            link=redeem,
        )


async def get(*, session_id: UUID) -> PairingSession:
    session = await PairingSession.get_or_none(id=session_id, kind=Kind.SCANNER)
    if session is None:
        raise NotFound("No such pairing session.")
    return session
