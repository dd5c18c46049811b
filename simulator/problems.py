"""Refusals from the server as typed exceptions, one per problem `code` (DESIGN §7)."""

from __future__ import annotations

from typing import Any

import httpx
import orjson


class ProblemError(Exception):
    """An RFC 9457 answer: `code` is the server's stable problem code."""

    code = "unknown"

    def __init__(
        self,
        code: str,
        status: int,
        detail: str = "",
        *,
        retry_after: float | None = None,
        body: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {detail}" if detail else f"{status} {code}")
        self.code = code
        self.status = status
        self.detail = detail
        self.retry_after = retry_after
        self.body = body or {}

    @property
    def field_errors(self) -> list[dict[str, Any]]:
        return list(self.body.get("errors", []))


class ValidationFailed(ProblemError):
    code = "validation_error"


class InvalidCode(ProblemError):
    code = "invalid_code"


class CodeExpired(ProblemError):
    code = "code_expired"


class CodeAlreadyUsed(ProblemError):
    code = "code_already_used"


class InvalidProof(ProblemError):
    code = "invalid_proof"


class SessionBurned(ProblemError):
    code = "session_burned"


class AuthorizationPending(ProblemError):
    code = "authorization_pending"


class SlowDown(ProblemError):
    code = "slow_down"


class AccessDenied(ProblemError):
    code = "access_denied"


class ExpiredToken(ProblemError):
    code = "expired_token"


class InvalidCredentials(ProblemError):
    code = "invalid_credentials"


class NotAuthenticated(ProblemError):
    code = "not_authenticated"


class TokenExpired(ProblemError):
    code = "token_expired"


class TokenRevoked(ProblemError):
    code = "token_revoked"


class Forbidden(ProblemError):
    code = "forbidden"


class NotFound(ProblemError):
    code = "not_found"


class Conflict(ProblemError):
    code = "conflict"


class IdempotencyKeyInFlight(ProblemError):
    code = "idempotency_key_in_flight"


class IdempotencyKeyReuse(ProblemError):
    code = "idempotency_key_reuse"


class UnsupportedMediaType(ProblemError):
    code = "unsupported_media_type"


class PayloadTooLarge(ProblemError):
    code = "payload_too_large"


class RateLimited(ProblemError):
    code = "rate_limited"


class Unavailable(ProblemError):
    code = "unavailable"


_BY_CODE: dict[str, type[ProblemError]] = {
    cls.code: cls
    for cls in (
        ValidationFailed,
        InvalidCode,
        CodeExpired,
        CodeAlreadyUsed,
        InvalidProof,
        SessionBurned,
        AuthorizationPending,
        SlowDown,
        AccessDenied,
        ExpiredToken,
        InvalidCredentials,
        NotAuthenticated,
        TokenExpired,
        TokenRevoked,
        Forbidden,
        NotFound,
        Conflict,
        IdempotencyKeyInFlight,
        IdempotencyKeyReuse,
        UnsupportedMediaType,
        PayloadTooLarge,
        RateLimited,
        Unavailable,
    )
}


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def problem_from(response: httpx.Response) -> ProblemError:
    """The typed exception for an error answer; a non-problem body becomes `http_<status>`."""
    body: dict[str, Any] = {}
    try:
        parsed = orjson.loads(response.content)
        if isinstance(parsed, dict):
            body = parsed
    except orjson.JSONDecodeError:
        pass
    code = str(body.get("code") or f"http_{response.status_code}")
    cls = _BY_CODE.get(code, ProblemError)
    return cls(
        code,
        response.status_code,
        str(body.get("detail", "")),
        retry_after=_retry_after(response),
        body=body,
    )


def raise_for_problem(response: httpx.Response) -> httpx.Response:
    if response.status_code >= 400:
        raise problem_from(response)
    return response
