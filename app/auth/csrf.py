"""CSRF tokens in starlette-csrf's own signed format, so its middleware verifies ours."""

from __future__ import annotations

import secrets

from itsdangerous.url_safe import URLSafeSerializer


def new_csrf_token(secret: str) -> str:
    return URLSafeSerializer(secret, "csrftoken").dumps(secrets.token_urlsafe(32))
