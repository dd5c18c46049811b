"""Bearer access tokens: verified once per process, checked for revocation on every request."""

from __future__ import annotations

import time

from starlette.requests import HTTPConnection

from app import clock
from app.auth.jwt import (
    DEVICE_AUDIENCE,
    DEVICE_TOKEN_TYPE,
    AccessClaims,
    InvalidAccessToken,
    Keyring,
    peek_kid,
)
from app.edge.runtime import runtime
from app.errors import InvalidCredentials, MissingBearer, TokenExpired, TokenRevoked
from app.services.signing_keys import refreshed

_RELOAD_AT_MOST_EVERY = 1.0


def bearer_token(connection: HTTPConnection) -> str:
    scheme, _, token = connection.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise MissingBearer
    return token.strip()


async def _keyring_for(connection: HTTPConnection, raw: str) -> Keyring:
    """A token signed with a key this process has not loaded yet triggers one reload.

    The keyring (and its cache of verified tokens) is replaced only if the published keys
    changed, so tokens with made-up `kid`s cannot keep emptying the cache.
    """
    state = runtime(connection)
    kid = peek_kid(raw)
    if kid and not state.keyring.knows(kid):
        now = time.monotonic()
        if now - state.keyring_loaded_at >= _RELOAD_AT_MOST_EVERY:
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
    if await runtime(connection).presence.is_revoked(claims.token_id):
        raise TokenRevoked(revoked)
    return claims


async def require_device(connection: HTTPConnection) -> AccessClaims:
    return await verified_claims(
        connection, token_type=DEVICE_TOKEN_TYPE, audience=DEVICE_AUDIENCE, renew="get a new one"
    )
