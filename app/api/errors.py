"""The one table from exceptions to problem+json answers on the API (DESIGN §7)."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from pydantic import ValidationError
from redis.exceptions import RedisError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from app.db import CONNECTION_LOST
from app.edge.problems import CODE_BY_HTTP_STATUS, domain_problem, problem
from app.errors import BodyValidationFailed, DomainError
from app.logging import get_logger
from statemachines import TransitionNotAllowed, TransitionRefused

log = get_logger(__name__)

Handler = Callable[[Request, Exception], Awaitable[Response]]


# A key is named back only if it could be a field name: any other key a client sent may be a
# pasted secret, and error bodies end up in client logs and crash reports.
_FIELD_NAME = re.compile(r"[A-Za-z_]{1,32}")


def _field(loc: tuple[int | str, ...]) -> str:
    parts = (
        str(part) if isinstance(part, int) or _FIELD_NAME.fullmatch(part) else "(unknown field)"
        for part in loc
    )
    return ".".join(parts) or "body"


def validation_problem(exc: ValidationError) -> Response:
    errors = [
        {
            # Pydantic puts the alias (camelCase) in `loc`; that is what the client sent.
            "field": _field(error["loc"]),
            "message": error["msg"],
            "type": error["type"],
        }
        for error in exc.errors(include_url=False, include_input=False, include_context=False)
    ]
    return problem("validation_error", "The request body is invalid.", errors=errors)


async def handle_domain_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, DomainError)
    return domain_problem(exc)


async def handle_body_validation(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, BodyValidationFailed)
    return validation_problem(exc.error)


async def handle_http_exception(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = CODE_BY_HTTP_STATUS.get(exc.status_code, "internal_error")
    detail = exc.detail if exc.status_code != 404 else "No such resource."
    headers = dict(exc.headers) if exc.headers else None
    return problem(code, str(detail), status=exc.status_code, headers=headers)


async def handle_transition_refused(_: Request, __: Exception) -> Response:
    # A service let a lifecycle error escape untranslated: the state forbids the move.
    return problem("conflict", "The resource is not in a state that allows this.")


async def handle_backend_down(request: Request, exc: Exception) -> Response:
    log.warning("backend_unavailable", path=request.url.path, error=type(exc).__name__)
    return problem(
        "unavailable",
        "A backing service is unavailable; try again shortly.",
        headers={"Retry-After": "5"},
    )


async def handle_unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled_error", path=request.url.path, error=type(exc).__name__)
    return problem("internal_error", "Something went wrong on our side.")


API_EXCEPTION_HANDLERS: dict[type[Exception], Handler] = {
    DomainError: handle_domain_error,
    BodyValidationFailed: handle_body_validation,
    HTTPException: handle_http_exception,
    TransitionNotAllowed: handle_transition_refused,
    TransitionRefused: handle_transition_refused,
    RedisError: handle_backend_down,
    **dict.fromkeys(CONNECTION_LOST, handle_backend_down),
    Exception: handle_unexpected,
}


def handler_for(exc: Exception) -> Handler:
    """The handler Starlette would pick: the nearest class in `exc`'s MRO."""
    return next(API_EXCEPTION_HANDLERS[t] for t in type(exc).__mro__ if t in API_EXCEPTION_HANDLERS)
