"""Domain errors: named types raised by services, translated once at each edge."""

from __future__ import annotations


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
    """A conditional write found the row no longer in the state it was read in."""

    code = "conflict"
    default_message = "Another request changed this first; reload and try again."


class RateLimited(DomainError):
    code = "rate_limited"
    default_message = "Too many attempts; try again later."

    def __init__(self, retry_after: int, message: str | None = None) -> None:
        super().__init__(message)
        self.retry_after = max(1, retry_after)


class Unavailable(DomainError):
    code = "unavailable"
    default_message = "A backing service is unavailable; try again shortly."


class UserAlreadyExists(DomainError):
    code = "conflict"
    default_message = "A user with this email already exists."
