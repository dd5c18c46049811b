"""Domain errors: named types raised anywhere below the edges, translated once at each edge
(problem+json in `app.api.errors`, pages in `app.web.errors`)."""

from __future__ import annotations

from pydantic import ValidationError


class DomainError(Exception):
    """`code` is the stable problem code of DESIGN §7; the message is safe to show."""

    code = "domain_error"
    default_message = "The request could not be completed."

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.default_message)

    @property
    def message(self) -> str:
        return str(self)


class InvalidCredentials(DomainError):
    code = "invalid_credentials"
    default_message = "The email or password is incorrect."


class NotAuthenticated(DomainError):
    code = "not_authenticated"
    default_message = "Sign in to continue."


class Forbidden(DomainError):
    code = "forbidden"
    default_message = "Your role does not allow this action."


class NotFound(DomainError):
    code = "not_found"
    default_message = "No such resource."


class Conflict(DomainError):
    code = "conflict"
    default_message = "The resource changed; reload and try again."


class StaleState(Conflict):
    """A lifecycle move lost its race: the conditional write found the row no longer in the
    state it was read in, or that state no longer allows the event."""

    code = "conflict"
    default_message = "Another request changed this first; reload and try again."


class RateLimited(DomainError):
    code = "rate_limited"
    default_message = "Too many attempts; try again later."

    def __init__(self, retry_after: int, message: str | None = None) -> None:
        super().__init__(message)
        self.retry_after = max(1, retry_after)


class IdempotencyKeyInFlight(DomainError):
    code = "idempotency_key_in_flight"
    default_message = (
        "A request with this Idempotency-Key is still being answered; retry in a moment."
    )


class IdempotencyKeyReuse(DomainError):
    code = "idempotency_key_reuse"
    default_message = "This Idempotency-Key was sent with a different request; use a new key."


class Unavailable(DomainError):
    code = "unavailable"
    default_message = "A backing service is unavailable; try again shortly."


class WeakPassword(DomainError):
    code = "validation_error"
    default_message = "The password is too weak."


class UserAlreadyExists(DomainError):
    code = "conflict"
    default_message = "A user with this email already exists."


class InvalidInput(DomainError):
    """Input that passed the schema but not a rule known only to the service."""

    code = "validation_error"
    default_message = "The request is invalid."

    def __init__(self, message: str | None = None, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class InvalidCode(DomainError):
    code = "invalid_code"
    default_message = "This pairing code is not valid."


class CodeExpired(DomainError):
    code = "code_expired"
    default_message = "This pairing code has expired; ask for a new one."


class CodeAlreadyUsed(DomainError):
    code = "code_already_used"
    default_message = "This pairing code has already been used."


class InvalidProof(DomainError):
    code = "invalid_proof"
    default_message = "The proof does not match this pairing session."


class SessionBurned(DomainError):
    code = "session_burned"
    default_message = "Too many wrong proofs; this pairing session is closed."


class AuthorizationPending(DomainError):
    code = "authorization_pending"
    default_message = "Waiting for an admin to approve this device."


class SlowDown(DomainError):
    code = "slow_down"
    default_message = "Polling too fast; wait longer between polls."


class AccessDenied(DomainError):
    code = "access_denied"
    default_message = "An admin rejected this device."


class ExpiredToken(DomainError):
    code = "expired_token"
    default_message = "The pairing session expired before it completed."


class TokenExpired(DomainError):
    code = "token_expired"
    default_message = "The credentials or access token have expired."


class TokenRevoked(DomainError):
    code = "token_revoked"
    default_message = "These credentials were revoked; pair the device again."


class UnsupportedMediaType(DomainError):
    code = "unsupported_media_type"
    default_message = "Send the body as application/json."


class InvalidBody(DomainError):
    code = "validation_error"
    default_message = "The body is not valid JSON."


class PayloadTooLarge(DomainError):
    code = "payload_too_large"
    default_message = "The request body is too large."


class MissingBearer(DomainError):
    code = "invalid_credentials"
    default_message = "Send an access token: Authorization: Bearer <token>."


class BodyValidationFailed(Exception):
    """A body or query string that failed its schema; the edge renders the field errors."""

    def __init__(self, error: ValidationError) -> None:
        super().__init__("invalid body")
        self.error = error
