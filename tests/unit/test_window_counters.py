"""The in-memory sliding-window counters behind per-request budgets (heartbeats), and the
`RateLimiter.hit` that spends them.

The counters read `time.time()` and take no clock, so the tests stop the wall clock with
monkeypatch instead of sleeping: that patches the time source, not the logic under test.
"""

from __future__ import annotations

import pytest
from limits.aio.storage import MemoryStorage

from app.auth.ratelimit import RateLimiter, WindowCounters
from app.errors import RateLimited

MINUTE = 60
# A whole number of minutes since the epoch: the start of a one-minute window.
WINDOW_START = float(MINUTE * 31_000_000)


class StoppedClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> StoppedClock:
    stopped = StoppedClock(WINDOW_START)
    monkeypatch.setattr("app.auth.ratelimit.time.time", stopped)
    return stopped


@pytest.fixture
def counters(clock: StoppedClock) -> WindowCounters:
    return WindowCounters()


def acquire_until_refused(counters: WindowCounters, key: str, limit: int, expiry: int) -> int:
    """How many single hits the key takes before the first refusal."""
    taken = 0
    while counters.acquire(key, limit, expiry):
        taken += 1
        assert taken <= limit, "acquired more than the limit"
    return taken


async def test_hits_within_one_window_are_counted(
    clock: StoppedClock, counters: WindowCounters
) -> None:
    clock.advance(10)

    assert [counters.acquire("dev-1", 5, MINUTE) for _ in range(3)] == [True] * 3

    assert await counters.get("dev-1") == 3
    assert await counters.get("dev-2") == 0
    assert await counters.get_sliding_window("dev-1", MINUTE) == (0, 0.0, 3, 110.0)
    assert await counters.get_expiry("dev-1") == WINDOW_START + MINUTE


async def test_an_unknown_key_has_an_empty_window(
    clock: StoppedClock, counters: WindowCounters
) -> None:
    clock.advance(20)

    assert await counters.get_sliding_window("nobody", MINUTE) == (0, 0.0, 0, 100.0)


@pytest.mark.parametrize(
    ("seconds_into_next_window", "sliding_window", "still_allowed"),
    [
        # Six hits last window: they weigh by the share of that window still in view.
        (0, (6, 60.0, 0, 120.0), 10 - 6),
        (15, (6, 45.0, 0, 105.0), 10 - 4),  # 6 * 0.75 = 4.5, rounded down
        (30, (6, 30.0, 0, 90.0), 10 - 3),
        (50, (6, 10.0, 0, 70.0), 10 - 1),
        (59, (6, 1.0, 0, 61.0), 10 - 0),
        # Two windows on, nothing of the old hits is left.
        (60, (0, 0.0, 0, 120.0), 10),
    ],
)
async def test_the_previous_window_weighs_by_the_time_left_in_it(
    clock: StoppedClock,
    counters: WindowCounters,
    seconds_into_next_window: int,
    sliding_window: tuple[int, float, int, float],
    still_allowed: int,
) -> None:
    clock.advance(10)
    for _ in range(6):
        assert counters.acquire("dev-1", 10, MINUTE)
    clock.advance(MINUTE - 10 + seconds_into_next_window)

    assert await counters.get_sliding_window("dev-1", MINUTE) == sliding_window
    assert acquire_until_refused(counters, "dev-1", 10, MINUTE) == still_allowed


async def test_acquire_refuses_once_the_amount_would_pass_the_limit(
    clock: StoppedClock, counters: WindowCounters
) -> None:
    assert acquire_until_refused(counters, "dev-1", 3, MINUTE) == 3
    assert counters.acquire("dev-1", 3, MINUTE) is False
    # A refused hit is not counted.
    assert await counters.get("dev-1") == 3

    assert counters.acquire("bulk", 3, MINUTE, amount=2) is True
    assert counters.acquire("bulk", 3, MINUTE, amount=2) is False
    assert counters.acquire("bulk", 3, MINUTE, amount=1) is True
    assert counters.acquire("big", 3, MINUTE, amount=4) is False


@pytest.mark.parametrize(
    ("expiry", "later", "keys_kept"),
    [
        # The old key's window ended, but the one after it is still in view: kept.
        (MINUTE, MINUTE + 1, 2),
        # Both its windows have passed: swept.
        (MINUTE, 2 * MINUTE + 1, 1),
        # Short windows long past, but the sweep runs at most once a minute.
        (10, 30, 2),
        (10, float(WindowCounters.SWEEP_EVERY_SECONDS), 1),
    ],
)
async def test_a_key_is_swept_once_both_its_windows_passed(
    clock: StoppedClock, counters: WindowCounters, expiry: int, later: float, keys_kept: int
) -> None:
    clock.advance(1)
    assert counters.acquire("gone-quiet", 5, expiry)
    clock.advance(later - 1)

    assert counters.acquire("still-busy", 5, expiry)

    assert await counters.reset() == keys_kept


async def test_reset_forgets_every_key_and_clear_only_one(
    clock: StoppedClock, counters: WindowCounters
) -> None:
    for key in ("a", "b", "c"):
        assert counters.acquire(key, 5, MINUTE)

    await counters.clear("a")
    await counters.clear_sliding_window("b", MINUTE)

    assert await counters.get("a") == 0
    assert await counters.get("b") == 0
    assert await counters.get("c") == 1
    assert await counters.reset() == 1
    assert await counters.get("c") == 0
    assert await counters.reset() == 0


def limiter() -> RateLimiter:
    return RateLimiter(MemoryStorage(), WindowCounters())


async def test_hit_raises_rate_limited_once_the_budget_is_spent(clock: StoppedClock) -> None:
    heartbeats = limiter()
    clock.advance(10)
    for _ in range(3):
        await heartbeats.hit("3/minute", "heartbeat", "dev-1")

    with pytest.raises(RateLimited) as refused:
        await heartbeats.hit("3/minute", "heartbeat", "dev-1")

    assert refused.value.code == "rate_limited"
    # The strategy's reset time: the end of the current window, 50 s away.
    assert refused.value.retry_after == 50
    # Another device has its own budget.
    await heartbeats.hit("3/minute", "heartbeat", "dev-2")


async def test_hit_is_allowed_again_once_the_old_hits_weigh_less(clock: StoppedClock) -> None:
    heartbeats = limiter()
    for _ in range(3):
        await heartbeats.hit("3/minute", "heartbeat", "dev-1")

    clock.advance(MINUTE + 1)  # all three still weigh 59/60: 2.95 rounds down to 2
    await heartbeats.hit("3/minute", "heartbeat", "dev-1")
    with pytest.raises(RateLimited):
        await heartbeats.hit("3/minute", "heartbeat", "dev-1")


async def test_limiter_reset_restores_every_budget(clock: StoppedClock) -> None:
    heartbeats = limiter()
    for _ in range(3):
        await heartbeats.hit("3/minute", "heartbeat", "dev-1")

    await heartbeats.reset()

    await heartbeats.hit("3/minute", "heartbeat", "dev-1")
