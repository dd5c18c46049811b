"""The backoff and the state of a lost backend (`app.presence.outage`), without Redis."""

from __future__ import annotations

import pytest

from app.presence.outage import Outage


def _failed(times: int) -> Outage:
    outage = Outage("redis")
    for _ in range(times):
        outage.failed(ConnectionError("refused"))
    return outage


@pytest.mark.parametrize(
    ("failures", "longest"),
    [(0, 0.0), (1, 0.5), (2, 1.0), (3, 2.0), (4, 2.0), (10_000, 2.0)],
)
def test_the_wait_doubles_up_to_its_ceiling_with_jitter_below_it(
    failures: int, longest: float
) -> None:
    delays = [_failed(failures).next_delay() for _ in range(50)]
    assert all(0.8 * longest <= d <= longest for d in delays)


def test_an_outage_lasts_from_the_first_failure_to_the_first_success() -> None:
    outage = _failed(3)
    assert outage.ongoing
    assert outage.failures == 3
    outage.succeeded()
    assert not outage.ongoing
    assert outage.failures == 0
    assert outage.next_delay() == 0.0


def test_a_success_without_an_outage_changes_nothing() -> None:
    outage = Outage("redis")
    outage.succeeded()
    assert not outage.ongoing
