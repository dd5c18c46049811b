from __future__ import annotations

from enum import StrEnum


class Kind(StrEnum):
    """Whom a device or a pairing session is for: a scanner app, or an admin's own phone."""

    SCANNER = "scanner"
    ADMIN_APP = "admin_app"
