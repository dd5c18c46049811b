"""Times as people read them in a list: "just now", "2 min ago", with the exact time beside."""

from __future__ import annotations

from datetime import UTC, datetime


def ago(then: datetime | None, now: datetime) -> str:
    if then is None:
        return "never"
    seconds = int((now - then).total_seconds())
    # A time a little ahead (another process's clock) is still "just now".
    if seconds < 60:
        return "just now"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min ago"
    hours = minutes // 60
    if hours < 24:
        return f"{hours} h ago"
    days = hours // 24
    return "1 day ago" if days == 1 else f"{days} days ago"


def exact(at: datetime) -> str:
    """The absolute time, in UTC, for a tooltip."""
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
