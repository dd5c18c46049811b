"""Many processes: heartbeats batched into one pipelined write every ~100 ms, revocations
fanned out over pub/sub into each process's memory.

While Redis is away, heartbeats wait in memory and revocations are asked of the database;
both loops retry with backoff and log once when Redis is lost and once when it is back.

Each flush also stamps the arrival of every device not already arrived (ZADD NX into a
second sorted set, after the heartbeat times, in the same pipeline), so that the sweep asks
for the few new arrivals by score instead of reading the whole online fleet.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Iterator
from datetime import timedelta

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from app import clock
from app.logging import get_logger
from app.metrics import PRESENCE_FLUSH_LAG
from app.presence.outage import Outage
from app.presence.store import PresenceStore, RevocationSource, SweepMark

log = get_logger(__name__)

PRESENCE_KEY = "polaris:presence"
ARRIVALS_KEY = "polaris:presence:arrivals"
SWEEP_MARK_KEY = "polaris:presence:sweep"
REVOCATION_CHANNEL = "polaris:revocations"
FLUSH_EVERY_SECONDS = 0.1
# Pub/sub delivers at most once: a message lost (a publish that failed on one process, a
# process gone between its commit and its publish, a listener's connection dropped without
# a word) would leave a revocation unheard. Each process also reads what ended from the
# database this often, which bounds how long any revocation can go unheard.
REVOCATION_POLL_SECONDS = 5.0
_POLL_OVERLAP = timedelta(seconds=5)
# Members asked per ZMSCORE: a sweep after a worker's downtime may ask about a whole fleet.
_READ_CHUNK = 10_000
RETRY_FLOOR_SECONDS = 0.1

# Atomic against the flush's two writes (heartbeat time first, then arrival): an arrival is
# dropped only if its device has no heartbeat at or after ARGV[1] at this very moment.
_FORGET_ARRIVALS = """
local silent_before = tonumber(ARGV[1])
local seen = redis.call('ZMSCORE', KEYS[1], unpack(ARGV, 3))
local gone, back = {}, {}
for i, score in ipairs(seen) do
  local member = ARGV[i + 2]
  if score and tonumber(score) >= silent_before then
    back[#back + 1] = ARGV[2]
    back[#back + 1] = member
  else
    gone[#gone + 1] = member
  end
end
if #gone > 0 then redis.call('ZREM', KEYS[2], unpack(gone)) end
if #back > 0 then redis.call('ZADD', KEYS[2], unpack(back)) end
return 0
"""
# Within what Lua's `unpack` takes at once.
_FORGET_BATCH = 2_000


class RedisPresenceStore(PresenceStore):
    def __init__(self, redis_url: str, revocations: RevocationSource) -> None:
        super().__init__(revocations)
        self._redis = Redis.from_url(redis_url, socket_connect_timeout=2, socket_timeout=5)
        # Its own connection with no read timeout: a quiet channel is not a dead one.
        self._listener = Redis.from_url(
            redis_url, socket_connect_timeout=2, health_check_interval=15
        )
        self._pending: dict[str, float] = {}
        # The batch being written: out of `_pending`, not yet readable from Redis.
        self._in_flight: dict[str, float] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._subscribed = asyncio.Event()
        # Retried every 2 s at most: how late heartbeats reach Redis, and the revocation
        # channel is trusted again, once Redis is back.
        self._flush_outage = Outage("presence_flush")
        self._listener_outage = Outage("revocation_listener")
        self._poll_outage = Outage("revocation_poll", ceiling=30.0)
        self._read_outage = Outage("presence_read")
        self._forget = self._redis.register_script(_FORGET_ARRIVALS)
        # Set when a call to Redis failed: it may have restarted meanwhile, from an old
        # snapshot or empty, so the next sweep must not trust its mark.
        self._doubtful = False
        # Cancelling alone is not enough: a cancellation that lands inside a redis-py call can
        # be swallowed there, and the loop would go round forever while `stop` awaits it.
        self._closing = False

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._flush_forever(), name="presence-flush"),
            asyncio.create_task(self._listen_forever(), name="revocation-listener"),
            asyncio.create_task(self._poll_revocations_forever(), name="revocation-poll"),
        ]
        # Serve only once revocations are known (or known to be unknown: then the database
        # answers each check until the subscription is back).
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._subscribed.wait(), timeout=5)

    async def stop(self) -> None:
        self._closing = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._flush()
        await self._redis.aclose()
        await self._listener.aclose()
        await super().stop()

    def record_heartbeat(self, device_id: str, at: float) -> None:
        self._pending[device_id] = max(at, self._pending.get(device_id, 0.0))

    async def last_seen(
        self, device_ids: Iterable[str], *, strict: bool = False
    ) -> dict[str, float]:
        ids = list(device_ids)
        if not ids:
            return {}
        unflushed = self._unflushed()
        try:
            scores: list[float | None] = []
            for start in range(0, len(ids), _READ_CHUNK):
                scores.extend(
                    await self._redis.zmscore(PRESENCE_KEY, ids[start : start + _READ_CHUNK])
                )
        except RedisError as exc:
            self._read_outage.failed(exc)
            self._doubtful = True
            if strict:
                raise
            # Console pages still load (an admin may need to revoke right now): the
            # database's copy and this process's own heartbeats stand in for Redis.
            scores = [None] * len(ids)
        else:
            self._read_outage.succeeded()
        seen = {d: float(s) for d, s in zip(ids, scores, strict=True) if s is not None}
        for device_id in ids:
            if device_id in unflushed:
                seen[device_id] = max(seen.get(device_id, 0.0), unflushed[device_id])
        return seen

    def _unflushed(self) -> dict[str, float]:
        """This process's heartbeats of the last ~100 ms, which Redis may not hold yet.

        Taken before the read they complete: a batch that leaves `_in_flight` while the read
        travels may have landed in Redis after Redis answered, and would be in neither.
        """
        unflushed = dict(self._in_flight)
        for device_id, at in self._pending.items():
            unflushed[device_id] = max(at, unflushed.get(device_id, 0.0))
        return unflushed

    async def seen_since(self, since: float) -> dict[str, float]:
        unflushed = self._unflushed()
        with self._doubted_if_failing():
            rows = await self._redis.zrangebyscore(PRESENCE_KEY, since, "+inf", withscores=True)
        seen = {member.decode(): float(score) for member, score in rows}
        for device_id, at in unflushed.items():
            if at >= since:
                seen[device_id] = max(seen.get(device_id, 0.0), at)
        return seen

    async def count_seen_since(self, since: float) -> int:
        unflushed = [device_id for device_id, at in self._unflushed().items() if at >= since]
        if not unflushed:
            return int(await self._redis.zcount(PRESENCE_KEY, since, "+inf"))
        # Count and scores at one instant (MULTI): a batch landing between two reads would
        # be counted twice, or not at all. Those Redis holds at an older time, or not at
        # all, are not in its count yet.
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.zcount(PRESENCE_KEY, since, "+inf")
            pipe.zmscore(PRESENCE_KEY, unflushed)
            counted, scores = await pipe.execute()
        return int(counted) + sum(1 for score in scores if score is None or score < since)

    @contextlib.contextmanager
    def _doubted_if_failing(self) -> Iterator[None]:
        try:
            yield
        except RedisError:
            self._doubtful = True
            raise

    async def seen_between(self, lo: float, hi: float) -> dict[str, float]:
        unflushed = self._unflushed()
        with self._doubted_if_failing():
            rows = await self._redis.zrangebyscore(PRESENCE_KEY, lo, f"({hi}", withscores=True)
        seen = {member.decode(): float(score) for member, score in rows}
        if not unflushed:
            return seen
        # A heartbeat not in Redis yet may move a device out of the range, or into it.
        ids = list(unflushed)
        with self._doubted_if_failing():
            scores = await self._redis.zmscore(PRESENCE_KEY, ids)
        for device_id, score in zip(ids, scores, strict=True):
            at = max(unflushed[device_id], float(score) if score is not None else 0.0)
            if lo <= at < hi:
                seen[device_id] = at
            else:
                seen.pop(device_id, None)
        return seen

    async def arrived_since(self, since: float) -> set[str]:
        # Not in Redis yet: each may be an arrival, and the sweep's writes check.
        unflushed = self._unflushed()
        with self._doubted_if_failing():
            members = await self._redis.zrangebyscore(ARRIVALS_KEY, since, "+inf")
        return {m.decode() for m in members}.union(unflushed)

    async def forget_arrivals(
        self, device_ids: Iterable[str], *, silent_before: float, now: float
    ) -> None:
        ids = list(device_ids)
        # In batches: a script holds Redis for as long as it runs.
        with self._doubted_if_failing():
            for start in range(0, len(ids), _FORGET_BATCH):
                await self._forget(
                    keys=[PRESENCE_KEY, ARRIVALS_KEY],
                    args=[silent_before, now, *ids[start : start + _FORGET_BATCH]],
                )

    async def sweep_mark(self) -> SweepMark | None:
        with self._doubted_if_failing():
            fields = await self._redis.hmget(SWEEP_MARK_KEY, ["swept_at", "reconciled_at"])
        doubtful, self._doubtful = self._doubtful, False
        if doubtful or None in fields:
            return None
        return SweepMark(swept_at=float(fields[0]), reconciled_at=float(fields[1]))

    async def save_sweep_mark(self, *, swept_at: float, reconciled_at: float | None) -> None:
        mark = {"swept_at": swept_at}
        if reconciled_at is not None:
            mark["reconciled_at"] = reconciled_at
        with self._doubted_if_failing():
            await self._redis.hset(SWEEP_MARK_KEY, mapping=mark)

    async def publish_revocations(self, token_ids: Iterable[str]) -> None:
        ids = list(token_ids)
        self._remember(ids)
        try:
            await self._redis.publish(REVOCATION_CHANNEL, orjson.dumps(ids))
        except RedisError as exc:
            # The other processes lost Redis too, and check the database until it is back.
            log.warning("revocation_publish_failed", error=type(exc).__name__, count=len(ids))

    async def _flush(self) -> None:
        if not self._pending:
            return
        batch, self._pending = self._pending, {}
        # Readers see the batch while it travels, or a device would vanish for a moment.
        self._in_flight = batch
        oldest = min(batch.values())
        try:
            # In this order: see `_FORGET_ARRIVALS`.
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.zadd(PRESENCE_KEY, batch, gt=True)
                pipe.zadd(ARRIVALS_KEY, dict.fromkeys(batch, clock.now().timestamp()), nx=True)
                await pipe.execute()
        except RedisError as exc:
            self._flush_outage.failed(exc, waiting=len(batch))
            self._doubtful = True
            for device_id, at in batch.items():
                self.record_heartbeat(device_id, at)
        else:
            self._flush_outage.succeeded(flushed=len(batch))
        finally:
            self._in_flight = {}
            # Still growing while Redis is away: the batch waits in `_pending` for the next try.
            PRESENCE_FLUSH_LAG.set(max(0.0, clock.now().timestamp() - oldest))

    async def _poll_revocations_forever(self) -> None:
        since = clock.now()
        while not self._closing:
            await asyncio.sleep(max(REVOCATION_POLL_SECONDS, self._poll_outage.next_delay()))
            # Overlapping reads: a revocation committed while the last one ran is read again.
            started = clock.now()
            try:
                self._remember(await self._revocations.ended_since(since - _POLL_OVERLAP))
            except Exception as exc:
                self._poll_outage.failed(exc)
                continue
            self._poll_outage.succeeded()
            since = started

    async def _flush_forever(self) -> None:
        while not self._closing:
            await asyncio.sleep(max(FLUSH_EVERY_SECONDS, self._flush_outage.next_delay()))
            await self._flush()

    async def _listen_forever(self) -> None:
        while not self._closing:
            pubsub = self._listener.pubsub()
            try:
                await pubsub.subscribe(REVOCATION_CHANNEL)
                # Anything revoked while we were not listening is in the database.
                await self._load_recent_revocations()
                self._trusted = True
                self._listener_outage.succeeded()
                self._subscribed.set()
                async for message in pubsub.listen():
                    if message["type"] == "message":
                        self._remember(orjson.loads(message["data"]))
            except Exception as exc:
                # Redis or the database (the reload) away: either way, retry; meanwhile each
                # check asks the database.
                self._listener_outage.failed(exc)
            finally:
                self._trusted = False
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()
            self._subscribed.set()
            await asyncio.sleep(max(RETRY_FLOOR_SECONDS, self._listener_outage.next_delay()))
