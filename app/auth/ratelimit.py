"""Rate limits on the `limits` library: Redis storage when configured, memory otherwise.

Two kinds of budget. Failure budgets (logins, redemptions) are tested before the attempt
and spent only when it fails, on an exact moving window; a budget that bounds guesses is
taken atomically before the attempt instead (`acquire`). Request budgets (heartbeats) count
every request with one `hit` on a sliding-window counter: O(1) time and memory per key.
"""

from __future__ import annotations

import functools
import math
import time

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.storage.base import SlidingWindowCounterSupport
from limits.aio.strategies import MovingWindowRateLimiter, SlidingWindowCounterRateLimiter
from redis.asyncio import Redis

from app.errors import RateLimited

_parse = functools.lru_cache(maxsize=64)(parse)


class RateLimiter:
    def __init__(self, storage: Storage, counters: Storage | None = None) -> None:
        self._storage = storage
        self._counters = counters or storage
        self._limiter = MovingWindowRateLimiter(storage)
        self._counter = SlidingWindowCounterRateLimiter(self._counters)

    @classmethod
    def for_backend(cls, redis: Redis | None) -> RateLimiter:
        """Share the app's Redis pool (closed by the app's lifespan), or count in memory."""
        if redis is None:
            return cls(MemoryStorage(), WindowCounters())
        storage = RedisStorage(
            "async+redis://",
            implementation="redispy",
            key_prefix="polaris:rl",
            # A documented option of `limits`, whose annotation of `**options` leaves it out.
            connection_pool=redis.connection_pool,  # type: ignore[arg-type]
        )
        return cls(storage)

    async def ensure_allowed(self, limit: str, *identifiers: str) -> None:
        """Raise `RateLimited` if the budget for `identifiers` is already spent."""
        item = _parse(limit)
        if not await self._limiter.test(item, *identifiers):
            raise RateLimited(await self._retry_after(item, identifiers))

    async def spend(self, limit: str, *identifiers: str) -> None:
        await self._limiter.hit(_parse(limit), *identifiers)

    async def acquire(self, limit: str, *identifiers: str) -> bool:
        """Take one unit of the budget if one is left, in one atomic step.

        `ensure_allowed` then `spend` lets every request that is tested before the first one
        spends share the last unit; a budget that must bound a count exactly (guesses at a
        code) is taken here, before the attempt.
        """
        return await self._limiter.hit(_parse(limit), *identifiers)

    async def retry_after(self, limit: str, *identifiers: str) -> int:
        """Whole seconds until the budget has a unit again (at least 1)."""
        return await self._retry_after(_parse(limit), identifiers)

    async def hit(self, limit: str, *identifiers: str) -> None:
        """Count one request against the budget, or raise `RateLimited` once it is spent."""
        item = _parse(limit)
        counters = self._counters
        if isinstance(counters, WindowCounters):
            # In memory, the strategy's key formatting and extra coroutines cost more than the
            # count itself.
            allowed = counters.acquire(_key(item, identifiers), item.amount, item.get_expiry())
        else:
            allowed = await self._counter.hit(item, *identifiers)
        if not allowed:
            stats = await self._counter.get_window_stats(item, *identifiers)
            raise RateLimited(max(1, math.ceil(stats.reset_time - time.time())))

    async def reset(self) -> None:
        await self._storage.reset()
        if self._counters is not self._storage:
            await self._counters.reset()

    async def _retry_after(self, item: RateLimitItem, identifiers: tuple[str, ...]) -> int:
        stats = await self._limiter.get_window_stats(item, *identifiers)
        return max(1, math.ceil(stats.reset_time - time.time()))


def _key(item: RateLimitItem, identifiers: tuple[str, ...]) -> str:
    """`item.key_for(*identifiers)` for string identifiers, at a fraction of its cost."""
    return (
        f"{item.namespace}/{'/'.join(identifiers)}/{item.amount}/{item.multiples}/"
        f"{item.GRANULARITY.name}"
    )


class WindowCounters(Storage, SlidingWindowCounterSupport):
    """Sliding-window counters in this process's memory, for keys counted on every request.

    The `limits` memory storage rescans all of its keys after every hit, which a fleet of
    devices heartbeating turns into the largest cost of the request. Here a hit touches one
    key, and keys whose windows have both passed are swept at most once per sweep interval.
    """

    STORAGE_SCHEME = ["async+polaris-counters"]
    SWEEP_EVERY_SECONDS = 60.0

    def __init__(
        self, uri: str | None = None, wrap_exceptions: bool = False, **options: float | str | bool
    ) -> None:
        super().__init__(uri, wrap_exceptions, **options)
        # key -> [window number, count in that window, count in the window before, expiry]
        self._windows: dict[str, list[int]] = {}
        self._swept_at = time.time()

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        return ValueError

    def _counts(self, key: str, expiry: int, now: float) -> list[int]:
        """The key's counters moved forward to the window `now` falls in."""
        window = int(now // expiry)
        counts = self._windows.get(key)
        if counts is None:
            counts = self._windows[key] = [window, 0, 0, expiry]
        elif counts[0] != window:
            counts[2] = counts[1] if counts[0] == window - 1 else 0
            counts[0], counts[1] = window, 0
        return counts

    def _sweep(self, now: float) -> None:
        if now - self._swept_at < self.SWEEP_EVERY_SECONDS:
            return
        self._swept_at = now
        self._windows = {
            key: counts
            for key, counts in self._windows.items()
            if counts[0] >= int(now // counts[3]) - 1
        }

    async def acquire_sliding_window_entry(
        self, key: str, limit: int, expiry: int, amount: int = 1
    ) -> bool:
        return self.acquire(key, limit, expiry, amount)

    def acquire(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        now = time.time()
        self._sweep(now)
        counts = self._counts(key, expiry, now)
        previous_weight = 1 - (now % expiry) / expiry
        if math.floor(counts[2] * previous_weight + counts[1]) + amount > limit:
            return False
        counts[1] += amount
        return True

    async def get_sliding_window(self, key: str, expiry: int) -> tuple[int, float, int, float]:
        now = time.time()
        into_window = now % expiry
        if key not in self._windows:
            return 0, 0.0, 0, 2 * expiry - into_window
        counts = self._counts(key, expiry, now)
        previous_ttl = expiry - into_window if counts[2] else 0.0
        return counts[2], previous_ttl, counts[1], 2 * expiry - into_window

    async def clear_sliding_window(self, key: str, _expiry: int) -> None:
        self._windows.pop(key, None)

    async def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        counts = self._counts(key, expiry, time.time())
        counts[1] += amount
        return counts[1]

    async def get(self, key: str) -> int:
        counts = self._windows.get(key)
        if counts is None:
            return 0
        return self._counts(key, counts[3], time.time())[1]

    async def get_expiry(self, key: str) -> float:
        counts = self._windows.get(key)
        if counts is None:
            return time.time()
        return float((counts[0] + 1) * counts[3])

    async def check(self) -> bool:
        return True

    async def reset(self) -> int | None:
        count = len(self._windows)
        self._windows.clear()
        return count

    async def clear(self, key: str) -> None:
        self._windows.pop(key, None)
