"""Domain errors as console pages: the one table for the browser side."""

from __future__ import annotations

from urllib.parse import quote

from redis.exceptions import RedisError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from app.db import CONNECTION_LOST
from app.edge.problems import status_for
from app.errors import DomainError, NotAuthenticated
from app.logging import get_logger
from app.web.rendering import render

log = get_logger(__name__)

_TITLES = {
    403: "Not allowed",
    404: "Page not found",
    405: "Not allowed",
    429: "Slow down",
    500: "Something went wrong",
    503: "Temporarily unavailable",
}


def error_page(request: Request, status: int, message: str) -> Response:
    title = _TITLES.get(status, "Request failed")
    return render(request, "error.html", {"title": title, "message": message}, status=status)


async def handle_web_error(request: Request, exc: Exception) -> Response:
    if isinstance(exc, NotAuthenticated):
        target = request.url.path
        if request.url.query:
            target += "?" + request.url.query
        if request.headers.get("hx-request"):
            return Response(status_code=401, headers={"HX-Redirect": "/login"})
        return RedirectResponse(f"/login?next={quote(target)}", status_code=303)
    if isinstance(exc, DomainError):
        return error_page(request, status_for(exc), exc.message)
    if isinstance(exc, HTTPException):
        message = "There is no page at this address." if exc.status_code == 404 else str(exc.detail)
        return error_page(request, exc.status_code, message)
    if isinstance(exc, (RedisError, *CONNECTION_LOST)):
        log.warning("backend_unavailable", path=request.url.path, error=type(exc).__name__)
        return error_page(
            request, 503, "The database or Redis is unavailable. Try again in a moment."
        )
    log.exception("unhandled_error", path=request.url.path, error=type(exc).__name__)
    return error_page(request, 500, "The error was logged. Try again in a moment.")
