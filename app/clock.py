"""The only reader of the time, so tests can move it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

_offset = timedelta()
_frozen: datetime | None = None


def now() -> datetime:
    if _frozen is not None:
        return _frozen
    return datetime.now(UTC) + _offset


def advance(delta: timedelta) -> None:
    """Move the clock forward (tests only)."""
    global _offset, _frozen
    if _frozen is not None:
        _frozen += delta
    else:
        _offset += delta


@contextmanager
def frozen(at: datetime | None = None) -> Iterator[None]:
    """Stop the clock at `at` (default: now) for the duration of the block (tests only)."""
    global _frozen
    previous = _frozen
    _frozen = at or now()
    try:
        yield
    finally:
        _frozen = previous


def reset() -> None:
    global _offset, _frozen
    _offset = timedelta()
    _frozen = None


def from_epoch(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)
