"""RFC 9457 problem+json: the one table from domain errors to HTTP answers."""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import ValidationError
from redis.exceptions import RedisError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from tortoise.exceptions import DBConnectionError

from app.api.bodies import BodyValidationFailed
from app.logging import get_logger
from app.services.errors import DomainError, RateLimited
from statemachines import TransitionNotAllowed, TransitionRefused

log = get_logger(__name__)

PROBLEM_CONTENT_TYPE = "application/problem+json"

STATUS_BY_CODE: dict[str, int] = {
    "validation_error": 400,
    "invalid_code": 400,
    "code_expired": 410,
    "code_already_used": 409,
    "invalid_proof": 400,
    "session_burned": 410,
    "authorization_pending": 400,
    "slow_down": 400,
    "access_denied": 403,
    "expired_token": 410,
    "invalid_credentials": 401,
    "not_authenticated": 401,
    "token_expired": 401,
    "token_revoked": 401,
    "forbidden": 403,
    "not_found": 404,
    "method_not_allowed": 405,
    "conflict": 409,
    "unsupported_media_type": 415,
    "payload_too_large": 413,
    "rate_limited": 429,
    "internal_error": 500,
    "unavailable": 503,
}

_CODE_BY_HTTP_STATUS = {
    400: "validation_error",
    401: "not_authenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
    503: "unavailable",
}


def problem(
    code: str,
    detail: str,
    *,
    status: int | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response:
    status = status or STATUS_BY_CODE[code]
    body = {
        "type": f"urn:polaris:problem:{code}",
        "title": code.replace("_", " ").capitalize(),
        "status": status,
        "code": code,
        "detail": detail,
        **extra,
    }
    return Response(
        orjson.dumps(body),
        status_code=status,
        media_type=PROBLEM_CONTENT_TYPE,
        headers={"Cache-Control": "no-store", **(headers or {})},
    )


def domain_problem(exc: DomainError) -> Response:
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, RateLimited) else None
    return problem(exc.code, exc.message, headers=headers)


def validation_problem(exc: ValidationError) -> Response:
    errors = [
        {
            # Pydantic puts the alias (camelCase) in `loc`; that is what the client sent.
            "field": ".".join(str(part) for part in error["loc"]) or "body",
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
    code = _CODE_BY_HTTP_STATUS.get(exc.status_code, "internal_error")
    detail = exc.detail if exc.status_code != 404 else "No such resource."
    return problem(code, str(detail), status=exc.status_code, headers=exc.headers)


async def handle_transition_refused(_: Request, exc: Exception) -> Response:
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


API_EXCEPTION_HANDLERS = {
    DomainError: handle_domain_error,
    BodyValidationFailed: handle_body_validation,
    HTTPException: handle_http_exception,
    TransitionNotAllowed: handle_transition_refused,
    TransitionRefused: handle_transition_refused,
    RedisError: handle_backend_down,
    DBConnectionError: handle_backend_down,
    Exception: handle_unexpected,
}
