"""Who is calling, and may they? Roles are read from the database on every request."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import HTTPConnection

from app.auth import sessions
from app.models import ConsoleSession, User
from app.models.user import Role
from app.services.errors import Forbidden, NotAuthenticated
from app.settings import Settings


@dataclass(frozen=True, slots=True)
class Principal:
    user: User
    session: ConsoleSession | None

    @property
    def is_admin(self) -> bool:
        return self.user.role is Role.ADMIN


async def authenticate(connection: HTTPConnection) -> Principal | None:
    settings: Settings = connection.app.state.settings
    cached = connection.scope.get("polaris.principal", _UNSET)
    if cached is not _UNSET:
        return cached  # type: ignore[no-any-return]
    principal = None
    session = await sessions.find_session(connection.cookies.get(sessions.SESSION_COOKIE), settings)
    if session is not None and session.user.is_active:
        principal = Principal(user=session.user, session=session)
    connection.scope["polaris.principal"] = principal
    return principal


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


_UNSET = object()
