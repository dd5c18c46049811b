"""Server-side console sessions and the CSRF token that goes with them.

The cookie carries a random id of 256 bits; the table keeps only its SHA-256, so a
database dump cannot be replayed as a cookie. Idle and absolute timeouts are enforced on
every lookup. CSRF is starlette-csrf's signed double-submit cookie, read from the
`X-CSRF-Token` header; its token is rotated together with the session at sign-in.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from itsdangerous.url_safe import URLSafeSerializer
from starlette.responses import Response

from app import clock
from app.auth.hashing import new_token, sha256_hex
from app.models import ConsoleSession, User
from app.settings import Settings

SESSION_COOKIE = "polaris_session"
CSRF_COOKIE = "polaris_csrf"
CSRF_HEADER = "x-csrf-token"
# Refresh `last_seen_at` at most this often: a write per request would be waste.
_TOUCH_EVERY = timedelta(seconds=60)


@dataclass(frozen=True, slots=True)
class OpenedSession:
    cookie_value: str
    csrf_token: str
    session: ConsoleSession


def new_csrf_token(settings: Settings) -> str:
    # Same format as starlette-csrf's own tokens, so its middleware verifies ours.
    return URLSafeSerializer(settings.secret, "csrftoken").dumps(secrets.token_urlsafe(32))


async def open_session(
    *, user: User, settings: Settings, ip: str | None, user_agent: str | None
) -> OpenedSession:
    now = clock.now()
    cookie_value = new_token(32)
    session = await ConsoleSession.create(
        token_hash=sha256_hex(cookie_value),
        user=user,
        created_at=now,
        last_seen_at=now,
        expires_at=now + timedelta(hours=settings.session_max_hours),
        ip=ip,
        user_agent=(user_agent or "")[:255] or None,
    )
    return OpenedSession(cookie_value, new_csrf_token(settings), session)


async def find_session(cookie_value: str | None, settings: Settings) -> ConsoleSession | None:
    """The live session for this cookie, with its user loaded; None if absent or timed out."""
    if not cookie_value:
        return None
    session = (
        await ConsoleSession.filter(token_hash=sha256_hex(cookie_value), ended_at=None)
        .select_related("user")
        .first()
    )
    if session is None:
        return None
    now = clock.now()
    if timed_out(session, now, settings):
        await end_session(session, now=now)
        return None
    if now - session.last_seen_at >= _TOUCH_EVERY:
        await ConsoleSession.filter(id=session.id).update(last_seen_at=now)
        session.last_seen_at = now
    return session


def timed_out(session: ConsoleSession, now: datetime, settings: Settings) -> bool:
    idle_limit = timedelta(minutes=settings.session_idle_minutes)
    return now >= session.expires_at or now - session.last_seen_at >= idle_limit


async def end_session(session: ConsoleSession, *, now: datetime | None = None) -> None:
    await ConsoleSession.filter(id=session.id, ended_at=None).update(ended_at=now or clock.now())


def set_session_cookies(response: Response, opened: OpenedSession, settings: Settings) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        opened.cookie_value,
        max_age=settings.session_max_hours * 3600,
        httponly=True,
        secure=settings.cookie_secure,
        samesite="lax",
    )
    # Readable by the console's script, which echoes it in the X-CSRF-Token header.
    response.set_cookie(
        CSRF_COOKIE,
        opened.csrf_token,
        httponly=False,
        secure=settings.cookie_secure,
        samesite="lax",
    )


def clear_session_cookies(response: Response, settings: Settings) -> None:
    response.delete_cookie(
        SESSION_COOKIE, httponly=True, secure=settings.cookie_secure, samesite="lax"
    )
