"""Text no backend can store: PostgreSQL's text type cannot hold U+0000, so a NUL anywhere in
a body, a form or a query string is refused at the edge instead of failing in the database."""

from __future__ import annotations


def has_nul(value: object) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, list | tuple):
        return any(has_nul(item) for item in value)
    if isinstance(value, dict):
        return any(has_nul(key) or has_nul(item) for key, item in value.items())
    return False


NUL_REFUSED = "must not contain the NUL character (U+0000)"
