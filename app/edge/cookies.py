"""The console's cookies: the session id, and the CSRF token the console's script echoes.

CSRF is starlette-csrf's signed double-submit cookie, read from the `X-CSRF-Token` header;
a new token is set with every new session, so it rotates at sign-in.
"""

from __future__ import annotations

from starlette.responses import Response

from app.services.console_sessions import OpenedSession
from app.settings import Settings

SESSION_COOKIE = "polaris_session"
CSRF_COOKIE = "polaris_csrf"
CSRF_HEADER = "x-csrf-token"


def set_session_cookies(
    response: Response, opened: OpenedSession, *, csrf_token: str, settings: Settings
) -> None:
    """`csrf_token` comes from `new_csrf_token`, made for this session alone."""
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
        CSRF_COOKIE, csrf_token, httponly=False, secure=settings.cookie_secure, samesite="lax"
    )


def clear_session_cookies(response: Response, settings: Settings) -> None:
    response.delete_cookie(
        SESSION_COOKIE, httponly=True, secure=settings.cookie_secure, samesite="lax"
    )
