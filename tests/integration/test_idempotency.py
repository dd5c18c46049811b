"""`Idempotency-Key` on register, poll, rotate and deregister: a retry after a lost answer
gets that answer again instead of acting twice (or being judged a thief)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from app import clock, jobs
from app.edge.runtime import runtime
from app.models import AuditEvent, Device, IdempotentAnswer
from app.models.user import Role
from app.services import idempotency
from app.settings import Settings
from simulator.protocol import POLL, REGISTER, ROTATE, TOKEN, Credentials, DeviceApi, PkcePair
from tests.backends import selected
from tests.factories import SignedInClient, make_user, sign_in
from tests.scanner import poll_body, scan_body, typed_body
from tests.wire import assert_problem

pytestmark = pytest.mark.usefixtures("presence_tasks_end_before_shutdown")

DEVICES = "/api/v1/admin/devices"
BACKEND = selected()


def keyed(key: str | None = None) -> dict[str, str]:
    return {"Idempotency-Key": key or str(uuid.uuid4())}


def assert_same_answer(first: httpx.Response, retry: httpx.Response) -> None:
    assert retry.status_code == first.status_code, retry.text
    assert retry.content == first.content
    assert retry.headers["content-type"] == first.headers["content-type"]
    assert retry.headers["idempotent-replayed"] == "true"
    assert retry.headers["cache-control"].startswith("no-store")


async def _scan_body(admin: SignedInClient) -> dict[str, Any]:
    return scan_body((await admin.api.mint_code()).pairing_uri)


async def test_a_register_retried_after_a_lost_answer_gets_the_same_credentials_once(
    admin: SignedInClient, device_client: httpx.AsyncClient
) -> None:
    body = await _scan_body(admin)
    headers = keyed()

    first = await device_client.post(REGISTER, json=body, headers=headers)
    retry = await device_client.post(REGISTER, json=body, headers=headers)

    assert first.status_code == 201, first.text
    assert "idempotent-replayed" not in first.headers
    assert_same_answer(first, retry)
    assert await Device.filter(deleted_at=None).count() == 1
    assert await AuditEvent.filter(action="device.registered").count() == 1
    # The replayed pair is the live one.
    credentials = Credentials.from_wire(retry.json())
    exchange = await device_client.post(TOKEN, json=credentials.wire())
    assert exchange.status_code == 200, exchange.text


async def test_the_same_key_with_another_body_is_refused_and_acts_on_nothing(
    admin: SignedInClient, device_client: httpx.AsyncClient
) -> None:
    headers = keyed()
    first = await device_client.post(REGISTER, json=await _scan_body(admin), headers=headers)
    other = await _scan_body(admin)

    reused = await device_client.post(REGISTER, json=other, headers=headers)

    assert first.status_code == 201, first.text
    assert_problem(reused, 422, "idempotency_key_reuse")
    assert await Device.filter(deleted_at=None).count() == 1
    # The other code is still there to redeem with a key of its own.
    fresh = await device_client.post(REGISTER, json=other, headers=keyed())
    assert fresh.status_code == 201, fresh.text


async def test_duplicates_sent_while_the_first_is_in_flight_get_409_and_one_device_is_made(
    admin: SignedInClient, device_client: httpx.AsyncClient
) -> None:
    body = await _scan_body(admin)
    headers = keyed()

    answers = await asyncio.gather(
        *(device_client.post(REGISTER, json=body, headers=headers) for _ in range(10))
    )

    made = [a for a in answers if a.status_code == 201]
    in_flight = [a for a in answers if a.status_code == 409]
    assert len(made) + len(in_flight) == len(answers), [a.text for a in answers]
    if BACKEND.is_postgres:
        assert in_flight, "no duplicate arrived while the first was in flight"
    # SQLite has one writer: a duplicate waits for the first's transaction and gets its answer.
    for answer in in_flight:
        assert_problem(answer, 409, "idempotency_key_in_flight")
    assert len({a.content for a in made}) == 1
    assert await Device.filter(deleted_at=None).count() == 1
    # Once the first is answered, a retry gets its answer.
    retry = await device_client.post(REGISTER, json=body, headers=headers)
    assert retry.status_code == 201
    assert retry.content == made[0].content


async def test_a_refusal_is_kept_too_and_a_retry_does_not_spend_the_budget_again(
    admin: SignedInClient, device_client: httpx.AsyncClient
) -> None:
    body = {**await _scan_body(admin), "pairingProof": PkcePair.generate().verifier}
    headers = keyed()

    first = await device_client.post(REGISTER, json=body, headers=headers)
    retry = await device_client.post(REGISTER, json=body, headers=headers)

    assert_problem(first, 400, "invalid_proof")
    assert_same_answer(first, retry)
    assert await AuditEvent.filter(action="pairing.redeem_failed").count() == 1


async def test_a_rotation_whose_answer_was_lost_is_answered_again_long_after_the_race_window(
    device_api: DeviceApi, device_client: httpx.AsyncClient, device: Credentials
) -> None:
    headers = keyed()
    first = await device_client.post(ROTATE, json=device.wire(), headers=headers)
    # Long past the race window, where the old pair alone would read as a stolen copy.
    clock.advance(timedelta(seconds=120))

    retry = await device_client.post(ROTATE, json=device.wire(), headers=headers)

    assert first.status_code == 200, first.text
    assert_same_answer(first, retry)
    rotated = Credentials.from_wire(retry.json())
    assert (await device_api.access_token(rotated)).token
    assert await AuditEvent.filter(action="device.token.reuse_detected").count() == 0
    # Without the key, the same late retry is what a thief would send.
    thief = await device_client.post(ROTATE, json=device.wire())
    assert_problem(thief, 401, "token_revoked")


async def test_a_poll_whose_credentials_were_lost_is_answered_again(
    admin: SignedInClient, device_client: httpx.AsyncClient
) -> None:
    minted = await admin.api.mint_code()
    pkce = PkcePair.generate()
    pending = await device_client.post(REGISTER, json=typed_body(minted.code, pkce=pkce))
    assert pending.status_code == 202, pending.text
    await admin.api.approve(minted.pairing_session_id)
    body = poll_body(pending.json()["pairingId"], pkce)
    headers = keyed()

    first = await device_client.post(POLL, json=body, headers=headers)
    retry = await device_client.post(POLL, json=body, headers=headers)

    assert first.status_code == 201, first.text
    assert_same_answer(first, retry)
    without_key = await device_client.post(POLL, json=body)
    assert_problem(without_key, 409, "code_already_used")


async def test_a_deregistration_retried_gets_its_204_and_only_from_the_same_admin(
    admin: SignedInClient, client: httpx.AsyncClient, app: Starlette, device: Credentials
) -> None:
    headers = {**keyed(), **admin.write_headers()}
    path = f"{DEVICES}/{device.device_id}"

    first = await client.delete(path, headers=headers)
    retry = await client.delete(path, headers=headers)

    assert first.status_code == 204, first.text
    assert retry.status_code == 204
    assert retry.headers["idempotent-replayed"] == "true"
    assert await AuditEvent.filter(action="device.deregistered").count() == 1
    # Another admin sending the same key is a different caller: no replay for them.
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as other:
        second_admin = await sign_in(
            other, await make_user(Role.ADMIN, email="second-admin@example.com")
        )
        foreign = await other.delete(path, headers={**headers, **second_admin.write_headers()})
    assert_problem(foreign, 422, "idempotency_key_reuse")


@pytest.mark.parametrize("key", ["", "x" * 256, "schlüssel", "two words"])
async def test_a_malformed_key_is_refused_before_anything_is_done(
    admin: SignedInClient, device_client: httpx.AsyncClient, key: str
) -> None:
    body = await _scan_body(admin)

    answer = await device_client.post(
        REGISTER, json=body, headers=[(b"Idempotency-Key", key.encode())]
    )

    assert_problem(answer, 400, "validation_error")
    assert await Device.filter(deleted_at=None).count() == 0


async def test_answers_are_kept_encrypted_and_keys_only_as_hashes(
    admin: SignedInClient, device_client: httpx.AsyncClient
) -> None:
    key = str(uuid.uuid4())
    answer = await device_client.post(REGISTER, json=await _scan_body(admin), headers=keyed(key))
    secret = answer.json()["deviceSecret"]

    (row,) = await IdempotentAnswer.all()
    stored = " ".join(
        str(v) for v in (row.key_hash, row.request_hash, row.sealed_body, row.media_type)
    )
    assert secret not in stored
    assert answer.json()["deviceToken"] not in stored
    assert key not in stored


async def test_past_its_life_an_answer_is_no_longer_replayed_and_cleanup_deletes_it(
    admin: SignedInClient, device_client: httpx.AsyncClient, app: Starlette, settings: Settings
) -> None:
    body = await _scan_body(admin)
    headers = keyed()
    first = await device_client.post(REGISTER, json=body, headers=headers)
    assert first.status_code == 201, first.text
    clock.advance(timedelta(seconds=settings.idempotency_ttl_seconds + 1))

    late = await device_client.post(REGISTER, json=body, headers=headers)

    # Acted on anew: the code is spent by then.
    assert late.status_code in (400, 409, 410), late.text
    assert "idempotent-replayed" not in late.headers
    stale = await device_client.post(REGISTER, json=await _scan_body(admin), headers=keyed())
    assert stale.status_code == 201
    assert await IdempotentAnswer.all().count() == 1
    clock.advance(timedelta(seconds=settings.idempotency_ttl_seconds + 1))
    context = jobs.JobContext(settings=runtime(app).settings, store=runtime(app).presence)
    await jobs.cleanup(context)
    assert await IdempotentAnswer.all().count() == 0


@pytest.mark.parametrize("settings", [{"redeem_failures_per_ip": "1/minute"}], indirect=True)
async def test_a_rate_limited_answer_is_not_kept_so_the_retry_is_judged_anew(
    admin: SignedInClient, device_client: httpx.AsyncClient
) -> None:
    wrong = {**await _scan_body(admin), "code": "ZZZZZZZZ"}
    spent = await device_client.post(REGISTER, json=wrong, headers=keyed())
    assert_problem(spent, 400, "invalid_code")
    body = await _scan_body(admin)
    headers = keyed()

    limited = await device_client.post(REGISTER, json=body, headers=headers)
    retry = await device_client.post(REGISTER, json=body, headers=headers)

    assert_problem(limited, 429, "rate_limited")
    assert_problem(retry, 429, "rate_limited")
    assert "idempotent-replayed" not in retry.headers
    assert await IdempotentAnswer.all().count() == 1  # the kept refusal of the first key


async def test_a_claim_left_by_a_process_that_died_is_taken_over_after_a_minute(
    admin: SignedInClient, device_client: httpx.AsyncClient, settings: Settings
) -> None:
    key = str(uuid.uuid4())
    # What a request that died mid-way leaves: its claim, and no answer.
    await idempotency.claim(operation="register", key=key, request="0" * 64, settings=settings)
    early = await device_client.post(REGISTER, json=await _scan_body(admin), headers=keyed(key))
    clock.advance(idempotency.ABANDONED_AFTER + timedelta(seconds=1))
    late = await device_client.post(REGISTER, json=await _scan_body(admin), headers=keyed(key))

    assert_problem(early, 422, "idempotency_key_reuse")
    assert late.status_code == 201, late.text
