"""POST /api/v1/auth/login, /logout and GET /me: the console session over JSON."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.api.bodies import parse_body
from app.api.responses import LoginResponse, UserResponse
from app.api.schemas import LoginRequest
from app.auth.csrf import new_csrf_token
from app.edge.access import require_reader
from app.edge.cookies import SESSION_COOKIE, clear_session_cookies, set_session_cookies
from app.edge.presenters import user_view
from app.edge.responses import NO_STORE, view_response
from app.edge.runtime import request_ip, runtime
from app.errors import Forbidden
from app.services import accounts


def refuse_cross_site(request: Request) -> None:
    # Login needs no CSRF cookie (API clients have none yet), so browsers' own signal
    # stops a foreign page from signing a visitor into another account.
    if request.headers.get("sec-fetch-site") == "cross-site":
        raise Forbidden("Cross-site sign-in is not allowed.")


async def login(request: Request) -> Response:
    state = runtime(request)
    refuse_cross_site(request)
    body = await parse_body(request, LoginRequest)
    signed_in = await accounts.sign_in(
        email=body.email,
        password=body.password,
        ip=request_ip(request),
        user_agent=request.headers.get("user-agent"),
        previous_cookie=request.cookies.get(SESSION_COOKIE),
        limiter=state.rate_limiter,
        settings=state.settings,
    )
    csrf_token = new_csrf_token(state.settings.secret)
    response = view_response(
        LoginResponse(user=user_view(signed_in.user), csrf_token=csrf_token), headers=NO_STORE
    )
    set_session_cookies(response, signed_in.opened, csrf_token=csrf_token, settings=state.settings)
    return response


async def logout(request: Request) -> Response:
    principal = await require_reader(request)
    if principal.session is not None:
        await accounts.sign_out(session=principal.session, ip=request_ip(request))
    response = Response(status_code=204)
    clear_session_cookies(response, runtime(request).settings)
    return response


async def me(request: Request) -> Response:
    principal = await require_reader(request)
    return view_response(UserResponse(user=user_view(principal.user)))


routes = [
    Route("/login", login, methods=["POST"]),
    Route("/logout", logout, methods=["POST"]),
    Route("/me", me, methods=["GET"]),
]
# API clients have no CSRF cookie before they sign in; `refuse_cross_site` guards it.
CSRF_EXEMPT = (r"/login$",)
