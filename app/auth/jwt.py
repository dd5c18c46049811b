"""Access tokens: Ed25519-signed JWTs, verified with the algorithm, type and claims pinned.

Verifying an Ed25519 signature costs more than a whole bare request, so a verified token
is remembered until it expires; revocation is checked separately on every use.
"""

from __future__ import annotations

import functools
import json
import uuid
from dataclasses import dataclass
from typing import Any

from cachetools import LRUCache
from joserfc import jwt
from joserfc.errors import ExpiredTokenError, JoseError
from joserfc.jwk import KeySet, OKPKey
from joserfc.jwt import JWTClaimsRegistry
from joserfc.util import urlsafe_b64decode

ALGORITHM = "Ed25519"
DEVICE_TOKEN_TYPE = "device+jwt"
ADMIN_TOKEN_TYPE = "admin+jwt"
DEVICE_AUDIENCE = "polaris:device-api"
ADMIN_AUDIENCE = "polaris:admin-api"
_CACHE_SIZE = 200_000
# Private claims: the credential pair's expiry and the moment its device should rotate it.
_CREDENTIALS_EXPIRE_AT = "credentials_expire_at"
_ROTATE_AFTER = "rotate_after"


class InvalidAccessToken(Exception):
    """Malformed, wrongly signed, of the wrong type or audience, or expired."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class CredentialWindow:
    """When the credential pair behind an access token expires and when its device should
    rotate it, as the API renders them (ISO 8601): carried in the token, so a heartbeat
    answers them without reading the database."""

    expires_at_iso: str
    rotate_after_iso: str


@dataclass(frozen=True, slots=True)
class AccessClaims:
    subject: str
    token_id: str
    jti: str
    scope: tuple[str, ...]
    expires_at: int
    raw: dict[str, Any]
    # When the signing key's grace period ends, if it is retiring: from then on the token is
    # refused even by a server whose periodic keyring refresh has not run yet (or failed).
    key_retires_at: int | None = None
    # None in a token signed without it (an admin-app token, or one from before the claim).
    credential: CredentialWindow | None = None

    def usable(self, now: int) -> bool:
        return now < self.expires_at and (self.key_retires_at is None or now < self.key_retires_at)


@dataclass(frozen=True)
class KeyMaterial:
    kid: str
    private_jwk: dict[str, Any]
    public_jwk: dict[str, Any]


def generate_key() -> KeyMaterial:
    kid = uuid.uuid4().hex
    key = OKPKey.generate_key("Ed25519", parameters={"kid": kid})
    return KeyMaterial(kid, dict(key.as_dict(private=True)), dict(key.as_dict(private=False)))


class Keyring:
    """Signs with the newest key; verifies with every published one."""

    def __init__(
        self,
        *,
        signing: dict[str, Any],
        published: list[dict[str, Any]],
        issuer: str,
        retiring: dict[str, int] | None = None,
    ) -> None:
        self.issuer = issuer
        # kid -> the second its grace period ends, for the published keys being retired.
        self._retiring = dict(retiring or {})
        self._signing = OKPKey.import_key(signing)
        self._published = [dict(k) for k in published]
        self._verifying = KeySet([OKPKey.import_key(k) for k in published])
        self._kids = {k["kid"] for k in published}
        # Expiry is checked on every use (`verify`), so the cache only needs a size bound; a
        # time-aware cache costs several times more per lookup on the heartbeat path.
        self._verified: LRUCache[tuple[str, str], AccessClaims] = LRUCache(maxsize=_CACHE_SIZE)

    @property
    def signing_kid(self) -> str:
        return str(self._signing.kid)

    def knows(self, kid: str) -> bool:
        return kid in self._kids

    @property
    def kids(self) -> frozenset[str]:
        return frozenset(self._kids)

    def jwks(self) -> dict[str, Any]:
        return {"keys": [{**k, "alg": ALGORITHM, "use": "sig"} for k in self._published]}

    def sign(
        self,
        *,
        token_type: str,
        audience: str,
        subject: str,
        token_id: str,
        scope: tuple[str, ...],
        issued_at: int,
        lifetime: int,
        credential: CredentialWindow | None = None,
    ) -> tuple[str, int]:
        expires_at = issued_at + lifetime
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": audience,
            "sub": subject,
            "tid": token_id,
            "jti": uuid.uuid4().hex,
            "iat": issued_at,
            "nbf": issued_at,
            "exp": expires_at,
            "scope": " ".join(scope),
        }
        if credential is not None:
            claims[_CREDENTIALS_EXPIRE_AT] = credential.expires_at_iso
            claims[_ROTATE_AFTER] = credential.rotate_after_iso
        header = {"alg": ALGORITHM, "typ": token_type, "kid": self.signing_kid}
        return jwt.encode(header, claims, self._signing, algorithms=[ALGORITHM]), expires_at

    def verify(self, raw: str, *, token_type: str, audience: str, now: int) -> AccessClaims:
        cache_key = (token_type, raw)
        cached = self._verified.get(cache_key)
        if cached is None:
            cached = self._verify_signature(raw, token_type=token_type, audience=audience, now=now)
            self._verified[cache_key] = cached
        if now >= cached.expires_at:
            raise InvalidAccessToken("expired")
        if cached.key_retires_at is not None and now >= cached.key_retires_at:
            # Refused as it is once the keyring refresh has dropped the key: not a valid token.
            raise InvalidAccessToken("retired")
        return cached

    def already_verified(self, raw: str, *, token_type: str, now: int) -> AccessClaims | None:
        """The claims of a token `verify` accepted before, not expired nor its key retired since;
        None for anything else. Never verifies a signature."""
        cached = self._verified.get((token_type, raw))
        if cached is None or not cached.usable(now):
            return None
        return cached

    def _verify_signature(
        self, raw: str, *, token_type: str, audience: str, now: int
    ) -> AccessClaims:
        try:
            token = jwt.decode(raw, self._verifying, algorithms=[ALGORITHM])
        except (JoseError, ValueError, TypeError, json.JSONDecodeError) as exc:
            raise InvalidAccessToken("signature") from exc
        if token.header.get("typ") != token_type:
            raise InvalidAccessToken("type")
        registry = JWTClaimsRegistry(
            now=now,
            iss={"essential": True, "value": self.issuer},
            aud={"essential": True, "value": audience},
            sub={"essential": True},
            exp={"essential": True},
            tid={"essential": True},
            jti={"essential": True},
        )
        try:
            registry.validate(token.claims)
        except ExpiredTokenError as exc:
            raise InvalidAccessToken("expired") from exc
        except JoseError as exc:
            raise InvalidAccessToken("claims") from exc
        claims = token.claims
        return AccessClaims(
            subject=str(claims["sub"]),
            token_id=str(claims["tid"]),
            jti=str(claims["jti"]),
            scope=tuple(str(claims.get("scope", "")).split()),
            expires_at=int(claims["exp"]),
            raw=claims,
            key_retires_at=self._retiring.get(str(token.header.get("kid"))),
            credential=_credential_window(claims),
        )


def _credential_window(claims: dict[str, Any]) -> CredentialWindow | None:
    expires_at, rotate_after = claims.get(_CREDENTIALS_EXPIRE_AT), claims.get(_ROTATE_AFTER)
    if isinstance(expires_at, str) and isinstance(rotate_after, str):
        return CredentialWindow(expires_at, rotate_after)
    return None


def peek_kid(raw: str) -> str | None:
    """The unverified `kid` header, only to decide whether to reload the keyring."""
    return _kid_in_header(raw.split(".", 1)[0])


@functools.lru_cache(maxsize=256)
def _kid_in_header(segment: str) -> str | None:
    # Every token signed with one key carries the same header: decode it once, not per request.
    try:
        header = json.loads(urlsafe_b64decode(segment.encode()))
    except (ValueError, IndexError):
        return None
    kid = header.get("kid") if isinstance(header, dict) else None
    return kid if isinstance(kid, str) else None
