"""Sign-in and sign-out pages."""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import Field, ValidationError
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from app.auth.csrf import new_csrf_token
from app.edge.access import authenticate
from app.edge.cookies import SESSION_COOKIE, clear_session_cookies, set_session_cookies
from app.edge.responses import NO_STORE
from app.edge.runtime import request_ip, runtime
from app.errors import InvalidCredentials, RateLimited
from app.services import accounts
from app.web.forms import ConsoleForm
from app.web.rendering import render


class SignInForm(ConsoleForm):
    email: str = Field(min_length=3, max_length=254)
    password: str = Field(min_length=1, max_length=1024)
    next: str = "/"


def safe_next(target: str | None) -> str:
    """Only local paths: an open redirect after sign-in is a phishing aid. Browsers read `\\`
    as `/` and drop tabs and newlines, so `/\\evil.example` is another host: any of them, or
    any other control character, and the target is refused."""
    if not target or any(ch == "\\" or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in target):
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return "/"
    return target


async def sign_in_page(request: Request) -> Response:
    if await authenticate(request) is not None:
        return RedirectResponse(safe_next(request.query_params.get("next")), status_code=303)
    return render(
        request,
        "login.html",
        {"next": safe_next(request.query_params.get("next"))},
        headers=NO_STORE,
    )


def _form_error(request: Request, message: str, status: int) -> Response:
    return render(request, "partials/form_error.html", {"message": message}, status=status)


async def sign_in(request: Request) -> Response:
    state = runtime(request)
    try:
        form = SignInForm.model_validate(dict(await request.form()))
    except ValidationError:
        return _form_error(request, "Enter your email and password.", 400)
    try:
        signed_in = await accounts.sign_in(
            email=form.email,
            password=form.password,
            ip=request_ip(request),
            user_agent=request.headers.get("user-agent"),
            previous_cookie=request.cookies.get(SESSION_COOKIE),
            limiter=state.rate_limiter,
            settings=state.settings,
        )
    except InvalidCredentials as exc:
        return _form_error(request, exc.message, 401)
    except RateLimited as exc:
        return _form_error(
            request,
            f"Too many failed attempts. Try again in {exc.retry_after} seconds.",
            429,
        )
    response = Response(status_code=204, headers={"HX-Redirect": safe_next(form.next)})
    set_session_cookies(
        response,
        signed_in.opened,
        csrf_token=new_csrf_token(state.settings.secret),
        settings=state.settings,
    )
    return response


async def sign_out(request: Request) -> Response:
    principal = await authenticate(request)
    if principal is not None and principal.session is not None:
        await accounts.sign_out(session=principal.session, ip=request_ip(request))
    response = Response(status_code=204, headers={"HX-Redirect": "/login"})
    clear_session_cookies(response, runtime(request).settings)
    return response


routes = [
    Route("/login", sign_in_page, methods=["GET"]),
    Route("/login", sign_in, methods=["POST"]),
    Route("/logout", sign_out, methods=["POST"]),
]
