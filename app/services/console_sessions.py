"""Server-side console sessions.

The cookie carries a random id of 256 bits; the table keeps only its SHA-256, so a
database dump cannot be replayed as a cookie. Idle and absolute timeouts are enforced on
every lookup.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from app import clock
from app.auth.hashing import new_token, sha256_hex
from app.models import ConsoleSession, User
from app.settings import Settings

# Refresh `last_seen_at` at most this often: a write per request would be waste.
_TOUCH_EVERY = timedelta(seconds=60)


@dataclass(frozen=True, slots=True)
class OpenedSession:
    """The cookie value exists in clear only here, on its way into one response."""

    cookie_value: str
    session: ConsoleSession

    def __repr__(self) -> str:
        return f"OpenedSession(session={self.session.id}, cookie_value=***)"


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
    return OpenedSession(cookie_value, session)


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
