"""What the lifespan opens and every request uses, typed: one object on `app.state`."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.requests import HTTPConnection

from app.auth.client_ip import client_ip
from app.auth.jwt import Keyring
from app.auth.ratelimit import RateLimiter
from app.presence import PresenceStore
from app.services.verified_pairs import VerifiedPairs
from app.settings import Settings


@dataclass
class Runtime:
    settings: Settings
    redis: Redis | None
    rate_limiter: RateLimiter
    # Per process on purpose: a shared counter would cost a Redis call per heartbeat.
    heartbeat_limiter: RateLimiter
    presence: PresenceStore
    verified_pairs: VerifiedPairs
    # Replaced, never mutated, when another process rotates the signing key.
    keyring: Keyring
    keyring_loaded_at: float = 0.0


def runtime(owner: Starlette | HTTPConnection) -> Runtime:
    """The running app's backends, from the app itself or from any request to it."""
    app = owner.app if isinstance(owner, HTTPConnection) else owner
    found = app.state.runtime
    assert isinstance(found, Runtime), "the app's lifespan has not run"
    return found


def request_ip(connection: HTTPConnection) -> str | None:
    """The caller's address, believing only the configured proxy hops."""
    return client_ip(connection, runtime(connection).settings.trusted_proxy_hops)
