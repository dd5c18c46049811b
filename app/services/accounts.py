"""Console users: creation, sign-in and sign-out."""

from __future__ import annotations

from dataclasses import dataclass

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from app import clock
from app.auth.hashing import keyed_hash
from app.auth.passwords import hash_password, password_problem, verify_password
from app.auth.ratelimit import RateLimiter
from app.errors import InvalidCredentials, UserAlreadyExists, WeakPassword
from app.logging import get_logger
from app.models import AuditAction, ConsoleSession, Role, User
from app.services import app_onboarding, audit, console_sessions
from app.services.console_sessions import OpenedSession
from app.settings import Settings

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class SignedIn:
    user: User
    opened: OpenedSession


def normalise_email(email: str) -> str:
    return email.strip().lower()


async def create_user(
    *, email: str, password: str, role: Role, actor: audit.Actor | None = None
) -> User:
    if problem := password_problem(password):
        raise WeakPassword(f"password {problem}")
    password_hash = await hash_password(password)
    email = normalise_email(email)
    try:
        async with in_transaction() as connection:
            user = await User.create(
                email=email,
                password_hash=password_hash,
                role=role,
                created_at=clock.now(),
                using_db=connection,
            )
            await audit.record(
                audit.Entry(
                    action=AuditAction.USER_CREATED,
                    actor=actor or audit.Actor.system(),
                    target_type="user",
                    target_id=str(user.id),
                    metadata={"email": email, "role": role.value},
                ),
                using_db=connection,
            )
    except IntegrityError as exc:
        raise UserAlreadyExists from exc
    return user


async def list_users() -> list[User]:
    return await User.all().order_by("email")


async def emails_by_id(user_ids: set[str]) -> dict[str, str]:
    if not user_ids:
        return {}
    rows = await User.filter(id__in=list(user_ids)).values_list("id", "email")
    return {str(user_id): email for user_id, email in rows}


async def has_users() -> bool:
    return await User.exists()


async def sign_in(
    *,
    email: str,
    password: str,
    ip: str | None,
    user_agent: str | None,
    previous_cookie: str | None,
    limiter: RateLimiter,
    settings: Settings,
) -> SignedIn:
    """Failures answer the same whether or not the account exists, in the same time."""
    email = normalise_email(email)
    # Keyed by a hash: whatever was typed as the email (a password, at times) stays out of Redis.
    account_key = ("login-account", keyed_hash(settings.secret, f"login-account:{email}"))
    ip_key = ("login-ip", ip or "unknown")
    await limiter.ensure_allowed(settings.login_failures_per_account, *account_key)
    await limiter.ensure_allowed(settings.login_failures_per_ip, *ip_key)

    user = await User.get_or_none(email=email)
    usable = user if user is not None and user.is_active else None
    if not await verify_password(password, usable.password_hash if usable else None):
        await limiter.spend(settings.login_failures_per_account, *account_key)
        await limiter.spend(settings.login_failures_per_ip, *ip_key)
        # Never the email as typed: a password typed into the email field is a daily mistake.
        log.info("sign_in_failed", user_id=str(user.id) if user else None, ip=ip)
        raise InvalidCredentials
    assert usable is not None

    # Rotation: whatever session this browser had before is ended, never upgraded.
    if previous := await console_sessions.find_session(previous_cookie, settings):
        await console_sessions.end_session(previous)
    opened = await console_sessions.open_session(
        user=usable, settings=settings, ip=ip, user_agent=user_agent
    )
    now = clock.now()
    await User.filter(id=usable.id).update(last_login_at=now)
    await audit.record(
        audit.Entry(
            action=AuditAction.USER_SIGNED_IN,
            actor=audit.Actor.user(usable.id, ip),
            target_type="user",
            target_id=str(usable.id),
        )
    )
    log.info("signed_in", user_id=str(usable.id), role=usable.role.value)
    return SignedIn(usable, opened)


async def sign_out(*, session: ConsoleSession, ip: str | None) -> None:
    await console_sessions.end_session(session)
    await app_onboarding.cancel_for_console_session(console_session=session, ip=ip)
    await audit.record(
        audit.Entry(
            action=AuditAction.USER_SIGNED_OUT,
            actor=audit.Actor.user(session.user_id, ip),
            target_type="user",
            target_id=str(session.user_id),
        )
    )
