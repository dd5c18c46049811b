"""The bench's console measurement against a real `polaris serve`, a few samples per page."""

from __future__ import annotations

import asyncio

import pytest

from loadtests.console import console_timings, format_timings
from loadtests.errors import BenchError
from tests.harness import ServerProcess

pytestmark = [pytest.mark.slow]


def test_console_timings_time_each_page_as_one_admin_sees_it(server: ServerProcess) -> None:
    email, password = server.first_admin()

    timings = asyncio.run(console_timings(server.url, email, password, samples=3))

    assert [t.name for t in timings] == [
        "first page",
        "online filter",
        "offline filter",
        "label search",
        "live poll",
        "summary API",
    ]
    for timing in timings:
        assert timing.samples == 3
        assert 0 < timing.p50_ms <= timing.p95_ms <= timing.max_ms
    by_name = {t.name: t for t in timings}
    # Nothing changes on an idle server: the open page's poll is answered empty every time.
    assert by_name["live poll"].statuses == {204: 3}
    assert by_name["first page"].statuses == {200: 3}
    assert "live poll" in format_timings(timings)


def test_console_timings_refuse_a_wrong_password(server: ServerProcess) -> None:
    email, _ = server.first_admin()

    with pytest.raises(BenchError, match="sign-in failed"):
        asyncio.run(console_timings(server.url, email, "not the password", samples=1))
