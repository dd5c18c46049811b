"""PKCE (RFC 7636), S256 only: the device and the console each prove a verifier."""

from __future__ import annotations

import hmac
import re
import secrets

from authlib.oauth2.rfc7636 import create_s256_code_challenge

VERIFIER_PATTERN = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")
# BASE64URL(SHA-256(verifier)) without padding is always 43 characters.
CHALLENGE_PATTERN = re.compile(r"^[A-Za-z0-9\-_]{43}$")


def new_verifier() -> str:
    """256 bits of randomness, 43 url-safe characters."""
    return secrets.token_urlsafe(32)


def challenge_for(verifier: str) -> str:
    return str(create_s256_code_challenge(verifier))


def verifier_matches(verifier: str, challenge: str) -> bool:
    if not VERIFIER_PATTERN.fullmatch(verifier):
        return False
    return hmac.compare_digest(challenge_for(verifier).encode(), challenge.encode())
