"""Bearer access tokens on the device API: verified once, checked for revocation every time."""

from __future__ import annotations

import time

from starlette.requests import HTTPConnection

from app import clock
from app.auth.jwt import (
    DEVICE_AUDIENCE,
    DEVICE_TOKEN_TYPE,
    AccessClaims,
    InvalidAccessToken,
    peek_kid,
)
from app.services.errors import DomainError, InvalidCredentials, TokenExpired, TokenRevoked
from app.services.signing_keys import refreshed

_RELOAD_AT_MOST_EVERY = 1.0


class MissingBearer(DomainError):
    code = "invalid_credentials"
    default_message = "Send an access token: Authorization: Bearer <token>."


def bearer_token(connection: HTTPConnection) -> str:
    scheme, _, token = connection.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise MissingBearer
    return token.strip()


async def _keyring_for(connection: HTTPConnection, raw: str):  # type: ignore[no-untyped-def]
    """A token signed with a key this process has not loaded yet triggers one reload.

    The keyring (and its cache of verified tokens) is replaced only if the published keys
    changed, so tokens with made-up `kid`s cannot keep emptying the cache.
    """
    state = connection.app.state
    kid = peek_kid(raw)
    if kid and not state.keyring.knows(kid):
        now = time.monotonic()
        if now - getattr(state, "keyring_loaded_at", 0.0) >= _RELOAD_AT_MOST_EVERY:
            state.keyring = await refreshed(state.keyring, state.settings)
            state.keyring_loaded_at = now
    return state.keyring


async def verified_claims(
    connection: HTTPConnection,
    *,
    token_type: str,
    audience: str,
    renew: str,
    revoked: str | None = None,
) -> AccessClaims:
    """The claims of the request's bearer token, of this type and audience, not revoked.

    `renew` tells the caller how to get a fresh token once this one has expired; `revoked`
    replaces the default message of `token_revoked`.
    """
    raw = bearer_token(connection)
    keyring = await _keyring_for(connection, raw)
    try:
        claims = keyring.verify(
            raw, token_type=token_type, audience=audience, now=int(clock.now().timestamp())
        )
    except InvalidAccessToken as exc:
        if exc.reason == "expired":
            raise TokenExpired(f"The access token has expired; {renew}.") from exc
        raise InvalidCredentials("The access token is not valid here.") from exc
    if await connection.app.state.presence.is_revoked(claims.token_id):
        raise TokenRevoked(revoked)
    return claims


async def require_device(connection: HTTPConnection) -> AccessClaims:
    return await verified_claims(
        connection, token_type=DEVICE_TOKEN_TYPE, audience=DEVICE_AUDIENCE, renew="get a new one"
    )
