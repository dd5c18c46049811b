"""The audit and fleet lists' opaque cursor: what goes in comes out, anything else is refused."""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime, timedelta, timezone
from uuid import UUID

import pytest

from app.errors import InvalidInput
from app.services.pagination import decode_cursor, encode_cursor

ROW = UUID("0b7e4a3c-5f1d-4c2e-9a8b-6d5e4f3a2b1c")
AT = "2030-01-01T12:00:00+00:00"


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    ("at", "row_id"),
    [
        (datetime(2030, 1, 1, 12, 0, tzinfo=UTC), ROW),
        (datetime(2030, 1, 1, 12, 0, 0, 123456, tzinfo=UTC), ROW),
        (datetime(2030, 1, 1, 12, 0, 0, 1, tzinfo=UTC), UUID(int=0)),
        (datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), UUID(int=2**128 - 1)),
        (datetime(2030, 6, 1, 8, 30, tzinfo=timezone(timedelta(hours=5, minutes=30))), ROW),
        (datetime(2030, 6, 1, 8, 30, tzinfo=timezone(-timedelta(hours=8))), ROW),
    ],
    ids=["utc", "microseconds", "one-microsecond-nil-uuid", "y2k-max-uuid", "ist", "pst"],
)
def test_cursor_round_trips_time_and_row(at: datetime, row_id: UUID) -> None:
    cursor = encode_cursor(at, row_id)

    decoded_at, decoded_id = decode_cursor(cursor)

    assert re.fullmatch(r"[A-Za-z0-9_-]+", cursor)  # safe in a query string as it is
    assert decoded_at == at
    assert decoded_at.utcoffset() == at.utcoffset()
    assert decoded_at.microsecond == at.microsecond
    assert decoded_id == row_id


def test_cursors_of_different_rows_differ() -> None:
    at = datetime(2030, 1, 1, tzinfo=UTC)

    assert encode_cursor(at, ROW) != encode_cursor(at, UUID(int=1))
    assert encode_cursor(at, ROW) != encode_cursor(at + timedelta(microseconds=1), ROW)


@pytest.mark.parametrize(
    "cursor",
    [
        pytest.param("", id="empty"),
        pytest.param("%%%%", id="not-base64"),
        pytest.param("a", id="impossible-length"),
        pytest.param("é" * 8, id="non-ascii-text"),
        pytest.param(b64(AT.encode()), id="no-separator"),
        pytest.param(b64(f"yesterday|{ROW}".encode()), id="bad-date"),
        pytest.param(b64(f"|{ROW}".encode()), id="empty-date"),
        pytest.param(b64(f"{AT}|not-a-uuid".encode()), id="bad-uuid"),
        pytest.param(b64(f"{AT}|{ROW}|extra".encode()), id="trailing-field"),
        pytest.param(b64(f"{AT}|".encode()), id="empty-uuid"),
        pytest.param(b64(b"\xff\xfe|" + str(ROW).encode()), id="non-utf8-bytes"),
    ],
)
def test_malformed_cursor_is_invalid_input_on_the_cursor_field(cursor: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        decode_cursor(cursor)

    assert refused.value.field == "cursor"
    assert refused.value.code == "validation_error"
