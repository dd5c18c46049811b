"""The background jobs under arq workers on Redis: `arq app.worker.WorkerSettings`, or
`polaris worker`. Any number may run, since each cron tick has a unique job id and every
job is safe to repeat. arq is kept behind this module so that it stays replaceable.

Importing this module reads the environment (arq imports it to find `WorkerSettings`), and
refuses one without `REDIS_URL`: embedded, `polaris serve` runs the jobs itself
(`app.scheduler`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from arq import cron
from arq.connections import RedisSettings
from arq.cron import CronJob
from arq.typing import StartupShutdown, WorkerCoroutine
from arq.worker import Function
from tortoise import Tortoise

from app import db
from app.jobs import JobContext, Schedule, schedules
from app.logging import configure_logging, get_logger
from app.presence import create_store
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
