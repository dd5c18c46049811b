"""Secrets are stored only as hashes and compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
import secrets


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def keyed_hash(key: str, value: str) -> str:
    """HMAC-SHA256: for low-entropy secrets (short codes) a plain hash could be brute-forced."""
    return hmac.new(key.encode(), value.encode(), hashlib.sha256).hexdigest()


# Compared against when no row matches, so unknown tokens cost what known ones do.
ABSENT_HASH = "0" * 64


def matches(expected_hex: str, candidate_hex: str) -> bool:
    return hmac.compare_digest(expected_hex.encode(), candidate_hex.encode())


def new_token(nbytes: int = 32) -> str:
    return secrets.token_urlsafe(nbytes)
