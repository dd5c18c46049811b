"""Single use under concurrency, on PostgreSQL: each race is run `TRIALS` times with `RACERS`
concurrent requests released at once, and each trial must have exactly one winner and
create exactly the rows one winner creates. Known failures of this kind elsewhere: a
single-use key re-armed by a race (Headscale #158), double redemption (ShellHub #6679,
authentik #19967).

    POLARIS_RACE_TRIALS=1000 scripts/test tests/integration/test_races.py   # the long run

Each test prints its figures (winners per trial, rows created) in the test log.
"""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from functools import partial

import httpx
import pytest

from app.models import Device, DeviceToken
from app.settings import Settings
from simulator.protocol import (
    HEARTBEAT,
    POLL,
    REGISTER,
    ROTATE,
    TOKEN,
    Credentials,
    DeviceApi,
    PkcePair,
)
from tests import admin_phone
from tests.factories import SignedInClient
from tests.scanner import bearer, poll_body, scan_body, typed_body

RACERS = int(os.environ.get("POLARIS_RACERS", "50"))
TRIALS = int(os.environ.get("POLARIS_RACE_TRIALS", "100"))

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.slow,
    pytest.mark.usefixtures("presence_tasks_end_before_shutdown"),
]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # Every loser of a race is a failed redemption; the budget is not what is under test.
    return settings.model_copy(
        update={
            "redeem_failures_per_ip": "1000000/minute",
            "redeem_failures_global": "1000000/minute",
            "heartbeats_per_device": "1000000/minute",
        }
    )


@dataclass
class Tally:
    """Winners per trial, and what the losers were told."""

    name: str
    winners: Counter[int] = field(default_factory=Counter)
    answers: Counter[str] = field(default_factory=Counter)
    rows: Counter[int] = field(default_factory=Counter)

    def record(self, responses: list[httpx.Response], won: Callable[[httpx.Response], bool]) -> int:
        winners = sum(1 for r in responses if won(r))
        self.winners[winners] += 1
        for response in responses:
            if not won(response):
                self.answers[_answer(response)] += 1
        return winners

    def note(self, responses: list[httpx.Response]) -> None:
        """What the other racers were told (those that raced the one ending request)."""
        for response in responses:
            self.answers[f"{response.request.url.path} {_answer(response)}"] += 1

    def line(self) -> str:
        rows = f"; rows created per trial: {dict(self.rows)}" if self.rows else ""
        return (
            f"race {self.name}: {sum(self.winners.values())} trials x {RACERS} racers; "
            f"winners per trial: {dict(self.winners)}; losers told: {dict(self.answers)}{rows}"
        )


def _answer(response: httpx.Response) -> str:
    if response.headers.get("content-type", "").startswith("application/problem+json"):
        return f"{response.status_code} {response.json()['code']}"
    return str(response.status_code)


@pytest.fixture
def tally(request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]) -> Iterator[Tally]:
    figures = Tally(request.node.name.removeprefix("test_"))
    yield figures
    with capsys.disabled():
        print(f"\n{figures.line()}")


async def race(attempts: list[Callable[[], Awaitable[httpx.Response]]]) -> list[httpx.Response]:
    """Start every attempt, then release them together."""
    gate = asyncio.Event()

    async def once(attempt: Callable[[], Awaitable[httpx.Response]]) -> httpx.Response:
        await gate.wait()
        return await attempt()

    tasks = [asyncio.create_task(once(attempt)) for attempt in attempts]
    await asyncio.sleep(0)
    gate.set()
    return list(await asyncio.gather(*tasks))


async def race_creating_one_device(
    tally: Tally, attempts: list[Callable[[], Awaitable[httpx.Response]]]
) -> list[httpx.Response]:
    """`race`, noting how many devices it created: exactly one must be."""
    before = await Device.all().count()
    responses = await race(attempts)
    created = await Device.all().count() - before
    tally.rows[created] += 1
    assert created == 1, tally.line()
    return responses


def _created(response: httpx.Response) -> bool:
    return response.status_code == 201


def _ok(response: httpx.Response) -> bool:
    return response.status_code == 200


async def test_one_scanner_code_redeemed_by_many_qr_scans(
    admin: SignedInClient, device_client: httpx.AsyncClient, tally: Tally
) -> None:
    for _ in range(TRIALS):
        minted = await admin.api.mint_code()
        responses = await race_creating_one_device(
            tally,
            [
                partial(device_client.post, REGISTER, json=scan_body(minted.pairing_uri))
                for _ in range(RACERS)
            ],
        )

        assert tally.record(responses, _created) == 1, tally.line()


async def test_one_typed_code_polled_by_many(
    admin: SignedInClient, device_client: httpx.AsyncClient, tally: Tally
) -> None:
    for _ in range(TRIALS):
        minted = await admin.api.mint_code()
        pkce = PkcePair.generate()
        claimed = await device_client.post(REGISTER, json=typed_body(minted.code, pkce=pkce))
        assert claimed.status_code == 202, claimed.text
        await admin.api.approve(minted.pairing_session_id)
        body = poll_body(claimed.json()["pairingId"], pkce)
        responses = await race_creating_one_device(
            tally, [partial(device_client.post, POLL, json=body)] * RACERS
        )

        assert tally.record(responses, _created) == 1, tally.line()


async def test_one_admin_app_qr_token_exchanged_by_many(
    admin: SignedInClient, device_client: httpx.AsyncClient, tally: Tally
) -> None:
    for _ in range(TRIALS):
        token = (await admin_phone.generate(admin))["payload"]["token"]
        responses = await race([partial(admin_phone.exchange, device_client, token)] * RACERS)

        assert tally.record(responses, _ok) == 1, tally.line()


async def test_one_refresh_token_refreshed_by_many(
    admin: SignedInClient, device_client: httpx.AsyncClient, tally: Tally
) -> None:
    for _ in range(TRIALS):
        phone = await admin_phone.connect(admin, device_client)
        responses = await race(
            [partial(admin_phone.refresh, device_client, phone.refresh_token)] * RACERS
        )

        assert tally.record(responses, _ok) == 1, tally.line()


async def test_one_credential_pair_rotated_by_many(
    pair: Callable[[], Awaitable[Credentials]], device_client: httpx.AsyncClient, tally: Tally
) -> None:
    for _ in range(TRIALS):
        device = await pair()
        tokens_before = await DeviceToken.filter(device_id=device.device_id).count()
        responses = await race([partial(device_client.post, ROTATE, json=device.wire())] * RACERS)
        issued = await DeviceToken.filter(device_id=device.device_id).count() - tokens_before
        tally.rows[issued] += 1

        assert tally.record(responses, _ok) == 1, tally.line()
        assert issued == 1, tally.line()


async def test_approve_racing_reject(
    admin: SignedInClient, device_client: httpx.AsyncClient, tally: Tally
) -> None:
    for _ in range(TRIALS):
        minted = await admin.api.mint_code()
        claimed = await device_client.post(REGISTER, json=typed_body(minted.code))
        assert claimed.status_code == 202, claimed.text
        session = f"/api/v1/admin/pairing-sessions/{minted.pairing_session_id}"
        headers = {**admin.write_headers(), "Content-Type": "application/json"}

        verbs = ["approve" if i % 2 else "reject" for i in range(RACERS)]
        responses = await race(
            [
                partial(admin.client.post, f"{session}/{verb}", content=b"{}", headers=headers)
                for verb in verbs
            ]
        )
        decided = (await admin.api.pairing_session(minted.pairing_session_id))["state"]

        assert tally.record(responses, _ok) == 1, tally.line()
        winner = next(r for r in responses if _ok(r))
        assert winner.json()["state"] == decided


async def race_the_end(
    ending: Callable[[], Awaitable[httpx.Response]],
    ended_with: int,
    device: Credentials,
    device_client: httpx.AsyncClient,
    device_api: DeviceApi,
    tally: Tally,
) -> None:
    """`ending` (a deregistration, a revocation) against a device still in use: half the
    other racers trade its credentials, half heartbeat. Once `ending` has answered,
    nothing issued in the race works any more."""
    access = bearer((await device_api.access_token(device)).token)
    exchange = partial(device_client.post, TOKEN, json=device.wire())
    beat = partial(device_client.post, HEARTBEAT, json={}, headers=access)
    responses = await race([ending, *(exchange if i % 2 else beat for i in range(RACERS - 1))])

    assert tally.record(responses[:1], lambda r: r.status_code == ended_with) == 1, responses[
        0
    ].text
    tally.note(responses[1:])
    assert (await device_client.post(TOKEN, json=device.wire())).status_code == 401
    for response in responses[1:]:
        if response.request.url.path == TOKEN and _ok(response):
            late = bearer(response.json()["accessToken"])
            assert (await device_client.post(HEARTBEAT, json={}, headers=late)).status_code == 401


async def test_deregister_racing_token_exchanges_and_heartbeats(
    admin: SignedInClient,
    pair: Callable[[], Awaitable[Credentials]],
    device_client: httpx.AsyncClient,
    device_api: DeviceApi,
    tally: Tally,
) -> None:
    for _ in range(TRIALS):
        device = await pair()
        deregister = f"/api/v1/admin/devices/{device.device_id}"
        ending = partial(admin.client.delete, deregister, headers=admin.write_headers())
        await race_the_end(ending, 204, device, device_client, device_api, tally)


async def test_revoke_racing_token_exchanges(
    admin: SignedInClient,
    pair: Callable[[], Awaitable[Credentials]],
    device_client: httpx.AsyncClient,
    device_api: DeviceApi,
    tally: Tally,
) -> None:
    for _ in range(TRIALS):
        device = await pair()
        detail = await admin.api.device(device.device_id)
        token_id = next(t["tokenId"] for t in detail["tokens"] if t["state"] == "active")
        revoke = f"/api/v1/admin/devices/{device.device_id}/tokens/{token_id}/revoke"
        ending = partial(admin.client.post, revoke, headers=admin.write_headers())
        await race_the_end(ending, 200, device, device_client, device_api, tally)
