"""Rate limits on the `limits` library: Redis storage when configured, memory otherwise."""

from __future__ import annotations

import math
import time

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from redis.asyncio import Redis

from app.services.errors import RateLimited


class RateLimiter:
    def __init__(self, storage: Storage) -> None:
        self._storage = storage
        self._limiter = MovingWindowRateLimiter(storage)

    @classmethod
    def for_backend(cls, redis: Redis | None) -> RateLimiter:
        """Share the app's Redis pool (closed by the app's lifespan), or count in memory."""
        if redis is None:
            return cls(MemoryStorage())
        storage = RedisStorage(
            "async+redis://",
            implementation="redispy",
            key_prefix="polaris:rl",
            connection_pool=redis.connection_pool,  # type: ignore[arg-type]
        )
        return cls(storage)

    async def ensure_allowed(self, limit: str, *identifiers: str) -> None:
        """Raise `RateLimited` if the budget for `identifiers` is already spent."""
        item = parse(limit)
        if not await self._limiter.test(item, *identifiers):
            raise RateLimited(await self._retry_after(item, identifiers))

    async def spend(self, limit: str, *identifiers: str) -> None:
        await self._limiter.hit(parse(limit), *identifiers)

    async def reset(self) -> None:
        await self._storage.reset()

    async def _retry_after(self, item: RateLimitItem, identifiers: tuple[str, ...]) -> int:
        stats = await self._limiter.get_window_stats(item, *identifiers)
        return max(1, math.ceil(stats.reset_time - time.time()))
