"""Where the jobs run: arq workers on Redis, or an in-process scheduler when embedded.

`arq app.worker.WorkerSettings` (or `polaris worker`) starts a worker; any number may run,
since each cron tick has a unique job id and every job is safe to repeat. arq is kept behind
this module so that it stays replaceable.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from arq import cron
from arq.connections import RedisSettings
from arq.cron import CronJob
from tortoise import Tortoise

from app import db
from app.jobs import JobContext, Schedule, schedules
from app.logging import configure_logging, get_logger
from app.presence import create_store
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
        return await schedule.run(ctx["polaris"])

    return cron(
        run,  # type: ignore[arg-type]
        name=schedule.name,
        unique=True,
        timeout=max(schedule.every_seconds, 30),
        **cron_fields(schedule.every_seconds),
    )


def worker_settings(settings: Settings) -> type:
    if settings.redis_url is None:
        raise ConfigurationError(
            "The worker needs REDIS_URL. Without Redis, `polaris serve` runs the jobs itself."
        )

    async def on_startup(ctx: dict[str, Any]) -> None:
        configure_logging(level=settings.log_level, as_json=settings.log_json)
        # The global fallback lets the job tasks arq spawns see the ORM context.
        ctx["tortoise"] = await Tortoise.init(
            config=db.tortoise_config(settings.database_url), _enable_global_fallback=True
        )
        ctx["polaris"] = JobContext(settings=settings, store=create_store(settings))
        log.info("worker_started", jobs=[s.name for s in schedules(settings)])

    async def on_shutdown(ctx: dict[str, Any]) -> None:
        if "polaris" in ctx:
            await ctx["polaris"].store.stop()
        if "tortoise" in ctx:
            await ctx["tortoise"].close_connections()

    return type(
        "WorkerSettings",
        (),
        {
            "functions": [],
            "cron_jobs": [_cron_job(s) for s in schedules(settings)],
            "on_startup": on_startup,
            "on_shutdown": on_shutdown,
            "redis_settings": RedisSettings.from_dsn(settings.redis_url),
            "queue_name": "polaris:jobs",
            "health_check_key": "polaris:jobs:health-check",
            "handle_signals": True,
        },
    )


def __getattr__(name: str) -> Any:
    # `arq app.worker.WorkerSettings` reads the environment only when it asks.
    if name == "WorkerSettings":
        return worker_settings(load_settings())
    raise AttributeError(name)


class EmbeddedScheduler:
    """The same jobs, on timers inside the one `polaris serve` process."""

    def __init__(self, context: JobContext) -> None:
        self._context = context
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._every(s), name=f"job:{s.name}")
            for s in schedules(self._context.settings)
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _every(self, schedule: Schedule) -> None:
        while True:
            await asyncio.sleep(schedule.every_seconds)
            try:
                await schedule.run(self._context)
            except Exception:
                log.exception("job_failed", job=schedule.name)
