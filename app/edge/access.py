"""Who is calling, and may they? Roles are read from the database on every request.

Two ways in: the console session cookie, and on the admin JSON API an admin-app access
token (`Authorization: Bearer <admin+jwt>`). A Bearer request carries no ambient authority,
so it needs no CSRF token; the JWT stands for the admin who connected the app, with the role
that admin has now, and only while the app's connection is not revoked.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import HTTPConnection

from app import clock
from app.auth.jwt import ADMIN_AUDIENCE, ADMIN_TOKEN_TYPE
from app.edge.bearer import verified_claims
from app.edge.cookies import SESSION_COOKIE
from app.edge.runtime import runtime
from app.errors import Forbidden, NotAuthenticated
from app.models import ConsoleSession, Role, User
from app.services import app_credentials, console_sessions

# The app speaks only the JSON API; console pages stay cookie-only.
BEARER_PATHS = "/api/v1/"
PRINCIPAL_KEY = "polaris.principal"


@dataclass(frozen=True, slots=True)
class Principal:
    user: User
    session: ConsoleSession | None
    # Set when the caller is the admin app (Bearer JWT): the connected device's id.
    app_device_id: str | None = None

    @property
    def is_admin(self) -> bool:
        return self.user.role is Role.ADMIN


def _sends_bearer(connection: HTTPConnection) -> bool:
    scheme = connection.headers.get("authorization", "").partition(" ")[0]
    return scheme.lower() == "bearer" and connection.url.path.startswith(BEARER_PATHS)


async def _from_bearer(connection: HTTPConnection) -> Principal:
    claims = await verified_claims(
        connection,
        token_type=ADMIN_TOKEN_TYPE,
        audience=ADMIN_AUDIENCE,
        renew="refresh it",
        revoked="This app's access was revoked; connect it again.",
    )
    user = await app_credentials.owner_of_access_token(
        device_id=claims.subject, token_id=claims.token_id
    )
    # Last active, kept in the presence store: no database write per request.
    runtime(connection).presence.record_heartbeat(claims.subject, clock.now().timestamp())
    return Principal(user=user, session=None, app_device_id=claims.subject)


async def authenticate(connection: HTTPConnection) -> Principal | None:
    """The caller, looked up once per request and kept in its scope."""
    if PRINCIPAL_KEY in connection.scope:
        cached: Principal | None = connection.scope[PRINCIPAL_KEY]
        return cached
    principal = None
    if _sends_bearer(connection):
        principal = await _from_bearer(connection)
    else:
        session = await console_sessions.find_session(
            connection.cookies.get(SESSION_COOKIE), runtime(connection).settings
        )
        if session is not None and session.user.is_active:
            principal = Principal(user=session.user, session=session)
    connection.scope[PRINCIPAL_KEY] = principal
    return principal


def principal_of(connection: HTTPConnection) -> Principal | None:
    """The caller `authenticate` found for this request, if it ran."""
    found: Principal | None = connection.scope.get(PRINCIPAL_KEY)
    return found


async def require_reader(connection: HTTPConnection) -> Principal:
    principal = await authenticate(connection)
    if principal is None:
        raise NotAuthenticated
    return principal


async def require_admin(connection: HTTPConnection) -> Principal:
    principal = await require_reader(connection)
    if not principal.is_admin:
        raise Forbidden
    return principal


async def require_console_admin(connection: HTTPConnection) -> Principal:
    """An admin at the console itself: what only a signed-in browser may do."""
    principal = await require_admin(connection)
    if principal.session is None:
        raise Forbidden("Do this in the console, signed in with your browser.")
    return principal
