"""Encryption at rest for what the server must read back in clear (JWT signing keys, webhook
signing secrets, kept idempotent answers): Fernet under a key derived from SECRET_KEY, one
key per purpose, so that no two kinds of sealed value share a key."""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet


def sealer(secret: str, purpose: str) -> Fernet:
    digest = hashlib.sha256(f"polaris-{purpose}:".encode() + secret.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))
