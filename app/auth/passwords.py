"""Argon2 password hashing (pwdlib), off the event loop: a hash costs ~200 ms."""

from __future__ import annotations

from functools import lru_cache

from pwdlib import PasswordHash
from starlette.concurrency import run_in_threadpool

MIN_PASSWORD_LENGTH = 12


_chosen: PasswordHash | None = None


def _hasher() -> PasswordHash:
    global _chosen
    if _chosen is None:
        _chosen = PasswordHash.recommended()
    return _chosen


def use_hasher(hasher: PasswordHash) -> None:
    """Hash new passwords with `hasher` from now on (its own parameters in every hash, so
    hashes made before still verify). For a test suite that signs in thousands of times;
    a server always hashes with the recommended parameters."""
    global _chosen
    _chosen = hasher
    _dummy_hash.cache_clear()


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return _hasher().hash("polaris-timing-equaliser")


def hash_password_sync(password: str) -> str:
    return _hasher().hash(password)


async def hash_password(password: str) -> str:
    return await run_in_threadpool(hash_password_sync, password)


async def verify_password(password: str, password_hash: str | None) -> bool:
    """Always does one full verification, so unknown accounts answer in the same time."""
    target = password_hash or _dummy_hash()
    ok = await run_in_threadpool(_hasher().verify, password, target)
    return ok and password_hash is not None


def password_problem(password: str) -> str | None:
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"must be at least {MIN_PASSWORD_LENGTH} characters"
    return None
