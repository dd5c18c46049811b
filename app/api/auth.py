"""POST /api/v1/auth/login, /logout and GET /me: the console session over JSON."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.api.bodies import parse_body
from app.api.responses import json_response
from app.api.schemas import LoginRequest, LoginResponse, UserOut
from app.auth import sessions
from app.auth.access import require_reader
from app.auth.client_ip import client_ip
from app.models import User
from app.services import accounts
from app.services.errors import Forbidden
from app.settings import Settings


def user_out(user: User) -> UserOut:
    return UserOut(user_id=str(user.id), email=user.email, role=user.role.value)


def refuse_cross_site(request: Request) -> None:
    # Login needs no CSRF cookie (API clients have none yet), so browsers' own signal
    # stops a foreign page from signing a visitor into another account.
    if request.headers.get("sec-fetch-site") == "cross-site":
        raise Forbidden("Cross-site sign-in is not allowed.")


async def login(request: Request) -> Response:
    settings: Settings = request.app.state.settings
    refuse_cross_site(request)
    body = await parse_body(request, LoginRequest)
    signed_in = await accounts.sign_in(
        email=body.email,
        password=body.password,
        ip=client_ip(request, settings.trusted_proxy_hops),
        user_agent=request.headers.get("user-agent"),
        previous_cookie=request.cookies.get(sessions.SESSION_COOKIE),
        limiter=request.app.state.rate_limiter,
        settings=settings,
    )
    response = json_response(
        LoginResponse(user=user_out(signed_in.user), csrf_token=signed_in.opened.csrf_token),
        headers={"Cache-Control": "no-store"},
    )
    sessions.set_session_cookies(response, signed_in.opened, settings)
    return response


async def logout(request: Request) -> Response:
    settings: Settings = request.app.state.settings
    principal = await require_reader(request)
    if principal.session is not None:
        await accounts.sign_out(
            session=principal.session, ip=client_ip(request, settings.trusted_proxy_hops)
        )
    response = Response(status_code=204)
    sessions.clear_session_cookies(response, settings)
    return response


async def me(request: Request) -> Response:
    principal = await require_reader(request)
    return json_response({"user": user_out(principal.user).model_dump(by_alias=True)})


routes = [
    Route("/api/v1/auth/login", login, methods=["POST"]),
    Route("/api/v1/auth/logout", logout, methods=["POST"]),
    Route("/api/v1/auth/me", me, methods=["GET"]),
]
