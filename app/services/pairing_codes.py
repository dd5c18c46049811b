"""The one-time code a person types, and what is derived from it. Pure: no I/O."""

from __future__ import annotations

import hashlib
import secrets
from urllib.parse import urlencode

# Crockford base32: no I, L, O or U, so a code read aloud or off a screen survives.
ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
CODE_LENGTH = 8  # 40 bits
_READ_AS = {"I": "1", "L": "1", "O": "0"}


class MalformedCode(ValueError):
    pass


def new_code() -> str:
    value = secrets.randbits(5 * CODE_LENGTH)
    return "".join(ALPHABET[(value >> (5 * i)) & 31] for i in reversed(range(CODE_LENGTH)))


def display(code: str) -> str:
    """`K7QXM2PD` as `K7QX-M2PD`."""
    return f"{code[:4]}-{code[4:]}"


def normalise(typed: str) -> str:
    """Case, spaces and hyphens are ignored; I/L read as 1 and O as 0, as Crockford says."""
    cleaned = "".join(ch for ch in typed.upper() if ch not in " -\t")
    code = "".join(_READ_AS.get(ch, ch) for ch in cleaned)
    if len(code) != CODE_LENGTH or any(ch not in ALPHABET for ch in code):
        raise MalformedCode(f"a code is {CODE_LENGTH} characters of Crockford base32")
    return code


def check_code(device_challenge: str) -> str:
    """Six digits both screens show, so the admin approves the device actually in hand."""
    digest = hashlib.sha256(b"polaris-check-code:" + device_challenge.encode()).digest()
    return f"{int.from_bytes(digest[:8], 'big') % 1_000_000:06d}"


def pairing_uri(*, code: str, proof: str, origin: str) -> str:
    return "polaris://pair?" + urlencode({"code": code, "proof": proof, "origin": origin})
