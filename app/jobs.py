"""Background jobs (DESIGN §9). Each calls the services, returns a count and logs it.

The same functions run under arq (`app.worker.WorkerSettings`) and under the embedded
scheduler. Every one is idempotent and safe on two workers at once; a failure is logged and
the next tick tries again.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from app import clock
from app.logging import get_logger
from app.metrics import JOB_DURATION, JOB_FAILURES, JOB_RUNS
from app.presence import PresenceStore
from app.services import credential_expiry, pairing_sessions, presence, retention, webhooks
from app.settings import Settings

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class JobContext:
    settings: Settings
    store: PresenceStore


async def expire_pairing_sessions(_: JobContext) -> int:
    expired = await pairing_sessions.expire_overdue(now=clock.now())
    if expired:
        log.info("pairing_sessions_expired", count=expired)
    return expired


async def sweep_presence(context: JobContext) -> int:
    started = time.perf_counter()
    result = await presence.sweep(store=context.store, settings=context.settings, now=clock.now())
    if result.came_online or result.went_offline:
        log.info(
            "presence_swept",
            came_online=result.came_online,
            went_offline=result.went_offline,
            reconciled=result.reconciled,
            duration_ms=_ms_since(started),
        )
    return result.came_online + result.went_offline


async def flush_last_seen(context: JobContext) -> int:
    started = time.perf_counter()
    written = await presence.flush_last_seen(
        store=context.store, settings=context.settings, now=clock.now()
    )
    if written:
        log.info("last_seen_flushed", count=written, duration_ms=_ms_since(started))
    return written


def _ms_since(started: float) -> float:
    # In the line itself: at fleet scale, how long a pass took is what an operator asks.
    return round((time.perf_counter() - started) * 1000, 1)


async def notify_expiring_credentials(context: JobContext) -> int:
    sent = await credential_expiry.notify_expiring(now=clock.now(), settings=context.settings)
    if sent:
        log.info("credential_expiry_notices_sent", count=sent)
    return sent


async def cleanup(context: JobContext) -> int:
    """Delete what has outlived its use; the audit log is never touched."""
    deleted = await retention.cleanup(now=clock.now(), settings=context.settings)
    log.info(
        "cleanup_done",
        console_sessions=deleted.console_sessions,
        app_devices=deleted.app_devices,
        refresh_tokens=deleted.refresh_tokens,
        qr_codes=deleted.qr_codes,
        idempotent_answers=deleted.idempotent_answers,
        webhook_events=deleted.webhook_events,
    )
    return deleted.total


async def dispatch_webhooks(context: JobContext) -> int:
    made = await webhooks.dispatch(clock.now(), context.settings)
    if made:
        log.info("webhooks_dispatched", deliveries=made)
    return made


async def deliver_webhooks(context: JobContext) -> int:
    attempted = await webhooks.deliver_due(clock.now(), context.settings)
    if attempted:
        log.info("webhooks_delivered", attempts=attempted)
    return attempted


@dataclass(frozen=True, slots=True)
class Schedule:
    name: str
    run: Callable[[JobContext], Awaitable[int]]
    every_seconds: int

    async def run_once(self, context: JobContext) -> int:
        """One run, counted and timed under the job's name (`polaris_job_*`)."""
        JOB_RUNS.labels(self.name).inc()
        started = time.perf_counter()
        try:
            return await self.run(context)
        except Exception:
            JOB_FAILURES.labels(self.name).inc()
            raise
        finally:
            JOB_DURATION.labels(self.name).observe(time.perf_counter() - started)


def schedules(settings: Settings) -> list[Schedule]:
    return [
        Schedule(
            "expire_pairing_sessions",
            expire_pairing_sessions,
            settings.expire_sessions_every_seconds,
        ),
        Schedule("sweep_presence", sweep_presence, settings.presence_sweep_every_seconds),
        Schedule("flush_last_seen", flush_last_seen, settings.last_seen_flush_every_seconds),
        Schedule(
            "notify_expiring_credentials",
            notify_expiring_credentials,
            settings.credential_expiry_every_seconds,
        ),
        Schedule("cleanup", cleanup, settings.cleanup_every_seconds),
        Schedule("dispatch_webhooks", dispatch_webhooks, settings.webhook_delivery_every_seconds),
        Schedule("deliver_webhooks", deliver_webhooks, settings.webhook_delivery_every_seconds),
    ]
