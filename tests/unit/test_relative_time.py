"""Last-seen times in the fleet list, as a person reads them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from app.web.relative_time import ago, exact

NOW = datetime(2026, 12, 1, 16, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("before", "shown"),
    [
        (None, "never"),
        (timedelta(seconds=-5), "just now"),
        (timedelta(0), "just now"),
        (timedelta(seconds=59), "just now"),
        (timedelta(seconds=60), "1 min ago"),
        (timedelta(minutes=2, seconds=30), "2 min ago"),
        (timedelta(minutes=59, seconds=59), "59 min ago"),
        (timedelta(hours=1), "1 h ago"),
        (timedelta(hours=23, minutes=59), "23 h ago"),
        (timedelta(days=1), "1 day ago"),
        (timedelta(days=40), "40 days ago"),
    ],
)
def test_ago_reads_as_a_person_would_say_it(before: timedelta | None, shown: str) -> None:
    assert ago(None if before is None else NOW - before, NOW) == shown


def test_exact_is_the_utc_time_to_the_second() -> None:
    paris = datetime(2026, 12, 1, 17, 4, 5, tzinfo=UTC).astimezone(ZoneInfo("Europe/Paris"))
    assert exact(paris) == "2026-12-01 17:04:05 UTC"
