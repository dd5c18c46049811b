"""The background jobs under arq workers on Redis: `polaris worker` (or arq's own CLI,
`arq app.worker.WorkerSettings`, which exits when Redis goes away). Any number may run,
since each cron tick has a unique job id and every job is safe to repeat. arq is kept behind
this module so that it stays replaceable.

Importing this module reads the environment (arq imports it to find `WorkerSettings`), and
refuses one without `REDIS_URL`: embedded, `polaris serve` runs the jobs itself
(`app.scheduler`).

`polaris worker` runs `ResilientWorker`, which rides out a Redis outage (arq's own worker
exits on the first lost connection): it retries with backoff, logs once when Redis is lost
and once when it is back, and picks up again on a Redis that came back empty, since every
cron tick is enqueued afresh.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import signal
from collections.abc import Sequence
from typing import Any

from arq import cron
from arq.connections import RedisSettings, create_pool
from arq.cron import CronJob
from arq.typing import StartupShutdown, WorkerCoroutine
from arq.worker import Function, Worker, get_kwargs
from redis.exceptions import RedisError
from tortoise import Tortoise

from app import db
from app.jobs import JobContext, Schedule, schedules
from app.logging import configure_logging, get_logger
from app.presence import create_store
from app.presence.outage import Outage
from app.services.revocations import DatabaseRevocations
from app.settings import ConfigurationError, Settings, load_settings

log = get_logger(__name__)


def cron_fields(every_seconds: int) -> dict[str, Any]:
    """arq cron arguments that fire every `every_seconds`, aligned to the clock."""
    if every_seconds < 60 and 60 % every_seconds == 0:
        return {"second": set(range(0, 60, every_seconds))}
    if every_seconds % 60 == 0 and every_seconds < 3600 and 3600 % every_seconds == 0:
        return {"minute": set(range(0, 60, every_seconds // 60)), "second": 0}
    if every_seconds % 3600 == 0 and every_seconds <= 86400 and 86400 % every_seconds == 0:
        return {"hour": set(range(0, 24, every_seconds // 3600)), "minute": 0, "second": 0}
    raise ConfigurationError(
        f"A job interval of {every_seconds} s does not divide a minute, an hour or a day."
    )


def _cron_job(schedule: Schedule) -> CronJob:
    async def run(ctx: dict[str, Any]) -> int:
        context: JobContext = ctx["polaris"]
        return await schedule.run_once(context)

    return cron(
        run,
        name=schedule.name,
        unique=True,
        timeout=max(schedule.every_seconds, 30),
        **cron_fields(schedule.every_seconds),
    )


def _redis_url(settings: Settings) -> str:
    if settings.redis_url is None:
        raise ConfigurationError(
            "The worker needs REDIS_URL. Without Redis, `polaris serve` runs the jobs itself."
        )
    return settings.redis_url


SETTINGS = load_settings()
_REDIS_URL = _redis_url(SETTINGS)


async def on_startup(ctx: dict[str, Any]) -> None:
    configure_logging(level=SETTINGS.log_level, as_json=SETTINGS.log_json)
    # The global fallback lets the job tasks arq spawns see the ORM context.
    ctx["tortoise"] = await Tortoise.init(
        config=db.tortoise_config(SETTINGS.database_url), _enable_global_fallback=True
    )
    ctx["polaris"] = JobContext(
        settings=SETTINGS, store=create_store(SETTINGS, DatabaseRevocations())
    )
    log.info("worker_started", jobs=[s.name for s in schedules(SETTINGS)])


async def on_shutdown(ctx: dict[str, Any]) -> None:
    if "polaris" in ctx:
        await ctx["polaris"].store.stop()
    if "tortoise" in ctx:
        await ctx["tortoise"].close_connections()


class WorkerSettings:
    """arq reads these class attributes as its worker's arguments (typed as arq's own
    `WorkerSettingsBase` declares them)."""

    functions: Sequence[WorkerCoroutine | Function] = ()
    cron_jobs: Sequence[CronJob] | None = [_cron_job(s) for s in schedules(SETTINGS)]
    # Static: arq calls them with its context, never as methods of this class.
    on_startup: StartupShutdown | None = staticmethod(on_startup)
    on_shutdown: StartupShutdown | None = staticmethod(on_shutdown)
    redis_settings = RedisSettings.from_dsn(_REDIS_URL)
    queue_name = "polaris:jobs"
    health_check_key = "polaris:jobs:health-check"
    handle_signals = True


# What a lost or restarting Redis raises: redis-py's errors, or the socket's own.
REDIS_DOWN = (RedisError, OSError, asyncio.TimeoutError)


class ResilientWorker(Worker):
    """arq's worker, made to wait for Redis instead of exiting when it goes away."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.outage = Outage("worker_redis")

    async def main(self) -> None:
        # arq retries the first connection a few times, then raises: wait for it instead.
        once = dataclasses.replace(self.redis_settings or RedisSettings(), conn_retries=0)
        while self._pool is None:
            try:
                self._pool = await create_pool(
                    once,
                    job_serializer=self.job_serializer,
                    job_deserializer=self.job_deserializer,
                    default_queue_name=self.queue_name,
                    expires_extra_ms=self.expires_extra_ms,
                )
            except REDIS_DOWN as exc:
                self.outage.failed(exc)
                await asyncio.sleep(self.outage.next_delay())
        self.outage.succeeded()
        await super().main()

    async def _poll_iteration(self) -> None:
        try:
            await super()._poll_iteration()
        except REDIS_DOWN as exc:
            self.outage.failed(exc)
            await asyncio.sleep(self.outage.next_delay())
        else:
            self.outage.succeeded(jobs_running=len(self.tasks))

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        try:
            await super().start_jobs(job_ids)
        except REDIS_DOWN:
            # arq took a slot for the job it was starting and no task will give it back;
            # after enough outages the worker would pick no job at all.
            self.job_counter -= 1
            self.sem.release()
            raise

    async def close(self) -> None:
        """arq's `close`, except that an unreachable Redis no longer skips `on_shutdown`
        (which closes the database connections)."""
        if not self._handle_signals:
            self.handle_sig(signal.SIGUSR1)
        if not self._pool:
            return
        await asyncio.gather(*self.tasks.values(), return_exceptions=True)
        with contextlib.suppress(*REDIS_DOWN):
            await self.pool.delete(self.health_check_key)
        if self.on_shutdown:
            await self.on_shutdown(self.ctx)
        with contextlib.suppress(*REDIS_DOWN):
            await self.pool.close(close_connection_pool=True)
        self._pool = None


def run() -> None:
    """Run the jobs until a signal stops the worker (`polaris worker`)."""
    ResilientWorker(**get_kwargs(WorkerSettings)).run()
