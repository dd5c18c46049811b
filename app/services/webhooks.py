"""Signed webhooks (Standard Webhooks): endpoints, the fan-out of outbox events to them, and
delivery with retries.

Every event is written to the outbox in the transaction of its change (`app.services.events`).
`dispatch` turns each one into a delivery per subscribed endpoint; `deliver_due` sends the
deliveries that are due, each claimed by a conditional write so that two workers never send
the same attempt. A delivery is retried on the settings' schedule with jitter; one that fails
through the whole schedule fails for good and disables its endpoint. Every attempt of an
event carries the same `webhook-id`, so a receiver can drop what it has already handled.
"""

from __future__ import annotations

import asyncio
import base64
import random
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

import httpx
import orjson
from cryptography.fernet import Fernet, InvalidToken
from standardwebhooks import Webhook
from tortoise.transactions import in_transaction

from app import clock
from app.auth.sealing import sealer
from app.errors import Conflict, InvalidInput, NotFound
from app.logging import get_logger
from app.models import AuditAction, EventType, OutboxEvent, User, WebhookDelivery, WebhookEndpoint
from app.services import audit
from app.services import events as outbox
from app.services.webhook_urls import RefusedUrl, Target, check_url, resolve
from app.settings import Settings

log = get_logger(__name__)

ALL_EVENTS = "*"
# What an endpoint may subscribe to: `webhook.test` goes only where an admin sends it.
SUBSCRIBABLE = frozenset(t.value for t in EventType) - {EventType.WEBHOOK_TEST.value}
SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32
DISPATCH_BATCH = 200
DELIVERY_BATCH = 32
DELIVERY_CONCURRENCY = 16
# A claimed attempt whose worker died is taken up again once this much longer has passed.
CLAIM_MARGIN = timedelta(seconds=30)
JITTER = 0.1
ERROR_LENGTH = 200


@dataclass(frozen=True, slots=True)
class CreatedEndpoint:
    """A new endpoint and its signing secret, shown this once."""

    endpoint: WebhookEndpoint
    secret: str


def message_id(event_id: UUID) -> str:
    """The `webhook-id` of an event, the same on every attempt."""
    return f"msg_{event_id.hex}"


def _fernet(settings: Settings) -> Fernet:
    return sealer(settings.secret, "webhook-secrets")


def _new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def _subscriptions(requested: list[str]) -> list[str]:
    chosen = list(dict.fromkeys(e.strip() for e in requested))
    if not chosen:
        raise InvalidInput("Subscribe to at least one event type, or to `*`.", field="events")
    unknown = [e for e in chosen if e != ALL_EVENTS and e not in SUBSCRIBABLE]
    if unknown:
        raise InvalidInput(
            f"Unknown event type: {', '.join(unknown)}. Known: {', '.join(sorted(SUBSCRIBABLE))}.",
            field="events",
        )
    return [ALL_EVENTS] if ALL_EVENTS in chosen else chosen


def _safe_url(url: str) -> str:
    """The URL without its query string, which may carry a receiver's token: for the audit."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def _endpoint_entry(
    action: AuditAction, endpoint: WebhookEndpoint, actor: audit.Actor, **metadata: Any
) -> audit.Entry:
    return audit.Entry(
        action=action,
        actor=actor,
        target_type="webhook",
        target_id=str(endpoint.id),
        metadata={"webhookId": str(endpoint.id), "url": _safe_url(endpoint.url), **metadata},
    )


async def create_endpoint(
    *,
    url: str,
    events: list[str],
    description: str,
    actor: User,
    ip: str | None,
    settings: Settings,
) -> CreatedEndpoint:
    """A new endpoint, once its URL passes the policy; raises `InvalidInput` saying why not."""
    subscribed = _subscriptions(events)
    try:
        target = check_url(url, production=settings.is_production)
        await resolve(target, allow_private=settings.webhook_allow_private_networks)
    except RefusedUrl as exc:
        raise InvalidInput(str(exc), field="url") from None
    secret = _new_secret()
    async with in_transaction() as connection:
        endpoint = await WebhookEndpoint.create(
            url=url,
            events=subscribed,
            description=description,
            sealed_secret=_fernet(settings).encrypt(secret.encode()).decode(),
            created_by=actor,
            created_at=clock.now(),
            using_db=connection,
        )
        await audit.record(
            _endpoint_entry(
                AuditAction.WEBHOOK_CREATED,
                endpoint,
                audit.Actor.user(actor.id, ip),
                events=subscribed,
            ),
            using_db=connection,
        )
    return CreatedEndpoint(endpoint, secret)


async def list_endpoints() -> list[WebhookEndpoint]:
    return await WebhookEndpoint.all()


async def get_endpoint(endpoint_id: UUID) -> WebhookEndpoint:
    endpoint = await WebhookEndpoint.get_or_none(id=endpoint_id)
    if endpoint is None:
        raise NotFound("No such webhook endpoint.")
    return endpoint


async def delete_endpoint(*, endpoint_id: UUID, actor: User, ip: str | None) -> None:
    """Gone with its deliveries; what is in flight is not sent again."""
    endpoint = await get_endpoint(endpoint_id)
    async with in_transaction() as connection:
        await endpoint.delete(using_db=connection)
        await audit.record(
            _endpoint_entry(AuditAction.WEBHOOK_DELETED, endpoint, audit.Actor.user(actor.id, ip)),
            using_db=connection,
        )


async def send_test(*, endpoint_id: UUID, actor: User, ip: str | None) -> WebhookDelivery:
    """A `webhook.test` event for this endpoint alone, due at once."""
    endpoint = await get_endpoint(endpoint_id)
    if endpoint.disabled_at is not None:
        raise Conflict("The endpoint is disabled; create it again to receive events.")
    now = clock.now()
    async with in_transaction() as connection:
        event = await outbox.emit(
            EventType.WEBHOOK_TEST,
            {"webhookId": str(endpoint.id), "atIso": outbox.iso(now)},
            using_db=connection,
        )
        # Fanned out here, to this endpoint only: the dispatch job leaves it alone.
        await OutboxEvent.filter(id=event.id).using_db(connection).update(dispatched_at=now)
        delivery = await WebhookDelivery.create(
            endpoint=endpoint,
            event=event,
            next_attempt_at=now,
            created_at=now,
            using_db=connection,
        )
        await audit.record(
            _endpoint_entry(
                AuditAction.WEBHOOK_TEST_SENT,
                endpoint,
                audit.Actor.user(actor.id, ip),
                eventId=message_id(event.id),
            ),
            using_db=connection,
        )
    delivery.event = event
    return delivery


async def list_deliveries(endpoint_id: UUID, *, limit: int = 50) -> list[WebhookDelivery]:
    """The endpoint's deliveries, newest first, each with its event."""
    endpoint = await get_endpoint(endpoint_id)
    return (
        await WebhookDelivery.filter(endpoint_id=endpoint.id)
        .select_related("event")
        .order_by("-created_at", "-id")
        .limit(limit)
    )


# --- the jobs ----------------------------------------------------------------------------


def _subscribed(endpoint: WebhookEndpoint, event: OutboxEvent) -> bool:
    # An endpoint hears of what happens from its creation on, not of what came before.
    return endpoint.created_at <= event.occurred_at and (
        ALL_EVENTS in endpoint.events or event.type in endpoint.events
    )


async def dispatch(now: datetime, settings: Settings) -> int:
    """Fan the undispatched outbox events out to the endpoints subscribed to them; returns
    the number of deliveries made. Each event is claimed by a conditional write, so on two
    workers at once each one is fanned out exactly once."""
    del settings  # The same signature as every job; nothing here depends on the settings.
    pending = await OutboxEvent.filter(dispatched_at=None).limit(DISPATCH_BATCH)
    if not pending:
        return 0
    endpoints = await WebhookEndpoint.filter(disabled_at=None)
    made = 0
    for event in pending:
        async with in_transaction() as connection:
            claimed = (
                await OutboxEvent.filter(id=event.id, dispatched_at=None)
                .using_db(connection)
                .update(dispatched_at=now)
            )
            if claimed != 1 or event.type == EventType.WEBHOOK_TEST:
                continue
            receivers = [e for e in endpoints if _subscribed(e, event)]
            for endpoint in receivers:
                await WebhookDelivery.create(
                    endpoint_id=endpoint.id,
                    event_id=event.id,
                    next_attempt_at=now,
                    created_at=now,
                    using_db=connection,
                )
            made += len(receivers)
    return made


@dataclass(frozen=True, slots=True)
class Outcome:
    status_code: int | None = None
    error: str | None = None

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


async def deliver_due(now: datetime, settings: Settings) -> int:
    """Attempt the deliveries due at `now`; returns how many were attempted."""
    due = (
        await WebhookDelivery.filter(
            next_attempt_at__lte=now,
            delivered_at=None,
            failed_at=None,
            endpoint__disabled_at__isnull=True,
        )
        .order_by("next_attempt_at", "id")
        .limit(DELIVERY_BATCH)
    )
    if not due:
        return 0
    gate = asyncio.Semaphore(DELIVERY_CONCURRENCY)

    async def attempt(delivery: WebhookDelivery) -> bool:
        async with gate:
            try:
                return await _attempt(delivery, now, settings)
            except Exception:
                # One bad row never stops the batch; the claim's lease brings it back.
                log.exception("webhook_attempt_failed", delivery_id=str(delivery.id))
                return False

    return sum(await asyncio.gather(*(attempt(d) for d in due)))


async def _attempt(delivery: WebhookDelivery, now: datetime, settings: Settings) -> bool:
    lease = timedelta(seconds=settings.webhook_timeout_seconds) + CLAIM_MARGIN
    attempt = delivery.attempts + 1
    claimed = await WebhookDelivery.filter(
        id=delivery.id,
        attempts=delivery.attempts,
        next_attempt_at__lte=now,
        delivered_at=None,
        failed_at=None,
    ).update(attempts=attempt, next_attempt_at=now + lease)
    if claimed != 1:
        return False
    endpoint = await WebhookEndpoint.get_or_none(id=delivery.endpoint_id, disabled_at=None)
    event = await OutboxEvent.get_or_none(id=delivery.event_id)
    if endpoint is None or event is None:
        return False
    outcome = await _send(endpoint, event, settings)
    await _record(delivery, endpoint, event, attempt, outcome, settings)
    log.info(
        "webhook_attempted",
        delivery_id=str(delivery.id),
        webhook_id=str(endpoint.id),
        event_type=event.type,
        attempt=attempt,
        status_code=outcome.status_code,
        error=outcome.error,
    )
    return True


def body_of(event: OutboxEvent) -> str:
    """The JSON every attempt of `event` sends."""
    payload = {
        "id": message_id(event.id),
        "type": event.type,
        "timestamp": outbox.iso(event.occurred_at),
        "data": event.data,
    }
    return orjson.dumps(payload).decode()


async def _send(endpoint: WebhookEndpoint, event: OutboxEvent, settings: Settings) -> Outcome:
    try:
        secret = _fernet(settings).decrypt(endpoint.sealed_secret.encode()).decode()
    except InvalidToken:
        return Outcome(error="The signing secret cannot be unsealed: was SECRET_KEY replaced?")
    body = body_of(event)
    msg_id = message_id(event.id)
    sent_at = clock.now()
    headers = {
        "content-type": "application/json",
        "user-agent": "polaris-webhooks",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(sent_at.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, sent_at, body),
    }
    timeout = settings.webhook_timeout_seconds
    try:
        async with asyncio.timeout(timeout):
            target = check_url(endpoint.url, production=settings.is_production)
            addresses = await resolve(target, allow_private=settings.webhook_allow_private_networks)
            return await _post(target, str(addresses[0]), headers, body, timeout)
    except RefusedUrl as exc:
        return Outcome(error=_short(str(exc)))
    except (TimeoutError, httpx.TimeoutException):
        return Outcome(error=f"No answer within {timeout:g} s.")
    except (httpx.HTTPError, httpx.InvalidURL, OSError) as exc:
        return Outcome(error=_short(f"Connection failed: {type(exc).__name__}."))


async def _post(
    target: Target, address: str, headers: dict[str, str], body: str, seconds: float
) -> Outcome:
    # Connect to the address just checked, not to a second lookup's answer, which could
    # point elsewhere; the Host header and TLS name stay the URL's own.
    literal = f"[{address}]" if ":" in address else address
    url = f"{target.scheme}://{literal}:{target.port}{target.target}"
    netloc = urlsplit(target.url).netloc.rpartition("@")[2]
    extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
    async with httpx.AsyncClient(timeout=seconds, trust_env=False) as client:
        request = client.build_request(
            "POST",
            url,
            content=body.encode(),
            headers={**headers, "host": netloc},
            extensions=extensions,
        )
        # The receiver's body is neither read nor kept.
        response = await client.send(request, stream=True)
        await response.aclose()
    if 200 <= response.status_code < 300:
        return Outcome(status_code=response.status_code)
    return Outcome(
        status_code=response.status_code, error=f"The receiver answered {response.status_code}."
    )


def next_delay(attempt: int, schedule: tuple[int, ...]) -> timedelta | None:
    """How long after failed attempt number `attempt` (from 1) the next one is due, with
    ±10 % jitter so that a receiver coming back is not hit by every retry at once; None
    after the last one."""
    if attempt > len(schedule):
        return None
    base = schedule[attempt - 1]
    return timedelta(seconds=base * random.uniform(1 - JITTER, 1 + JITTER))


async def _record(
    delivery: WebhookDelivery,
    endpoint: WebhookEndpoint,
    event: OutboxEvent,
    attempt: int,
    outcome: Outcome,
    settings: Settings,
) -> None:
    now = clock.now()
    mine = WebhookDelivery.filter(id=delivery.id, attempts=attempt)
    common = {"last_status_code": outcome.status_code, "last_error": outcome.error}
    if outcome.delivered:
        await mine.update(delivered_at=now, next_attempt_at=None, **common)
        return
    delay = next_delay(attempt, settings.webhook_retry_schedule)
    if delay is not None:
        await mine.update(next_attempt_at=now + delay, **common)
        return
    async with in_transaction() as connection:
        failed = await mine.using_db(connection).update(
            failed_at=now, next_attempt_at=None, **common
        )
        if failed != 1:
            return
        disabled = (
            await WebhookEndpoint.filter(id=endpoint.id, disabled_at=None)
            .using_db(connection)
            .update(disabled_at=now)
        )
        if disabled == 1:
            await audit.record(
                _endpoint_entry(
                    AuditAction.WEBHOOK_DISABLED,
                    endpoint,
                    audit.Actor.system(),
                    eventId=message_id(event.id),
                    deliveryId=str(delivery.id),
                    attempts=attempt,
                    lastError=outcome.error,
                ),
                using_db=connection,
            )
    log.warning("webhook_endpoint_disabled", webhook_id=str(endpoint.id), attempts=attempt)


def _short(text: str) -> str:
    return text if len(text) <= ERROR_LENGTH else text[: ERROR_LENGTH - 1] + "…"
