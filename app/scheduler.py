"""Embedded mode: the background jobs on timers inside the one `polaris serve` process."""

from __future__ import annotations

import asyncio
import contextlib

from app.jobs import JobContext, Schedule, schedules
from app.logging import get_logger

log = get_logger(__name__)

FIRST_RUN_WITHIN_SECONDS = 60


class EmbeddedScheduler:
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
        # An hourly or daily job also runs a minute after start: a server restarted more often
        # than that would otherwise never run it.
        wait = min(schedule.every_seconds, FIRST_RUN_WITHIN_SECONDS)
        while True:
            await asyncio.sleep(wait)
            wait = schedule.every_seconds
            try:
                await schedule.run_once(self._context)
            except Exception:
                log.exception("job_failed", job=schedule.name)
