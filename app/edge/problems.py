"""RFC 9457 problem+json: the body every API error has, and the contract from each stable
`code` to its HTTP status (DESIGN §7). Used by the API, the console and the middleware."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

from app.edge.responses import NO_STORE
from app.errors import DomainError, RateLimited

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
    "idempotency_key_in_flight": 409,
    "idempotency_key_reuse": 422,
    "unsupported_media_type": 415,
    "payload_too_large": 413,
    "rate_limited": 429,
    "internal_error": 500,
    "unavailable": 503,
}

CODE_BY_HTTP_STATUS = {
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


def status_for(error: DomainError) -> int:
    return STATUS_BY_CODE.get(error.code, 400)


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
        headers={"Cache-Control": NO_STORE["Cache-Control"], **(headers or {})},
    )


def domain_problem(exc: DomainError) -> Response:
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, RateLimited) else None
    return problem(exc.code, exc.message, headers=headers)
