"""Production shape: two `polaris serve` replicas and an arq worker on PostgreSQL + Redis."""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from loadtests.http1 import KeptAliveConnection
from simulator.protocol import HEARTBEAT, JSON_HEADERS, PUSH_TOKEN, TOKEN
from tests.e2e.conftest import (
    STACK_ADMIN_EMAIL,
    STACK_ADMIN_PASSWORD,
    Stack,
    flush_stack_redis,
    running_stack,
)
from tests.e2e.simulator_fixtures import CODE_TTL, ONLINE_WINDOW, SWEEP_EVERY
from tests.harness import ServerProcess
from tests.scanner import scan_body

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]


@contextmanager
def _admin(server: ServerProcess) -> Iterator[tuple[httpx.Client, dict[str, str]]]:
    with httpx.Client(base_url=server.url, timeout=10) as client:
        credentials = {"email": STACK_ADMIN_EMAIL, "password": STACK_ADMIN_PASSWORD}
        login = client.post("/api/v1/auth/login", json=credentials)
        assert login.status_code == 200, login.text
        yield client, {"X-CSRF-Token": login.json()["csrfToken"]}


def _pair(admin: httpx.Client, csrf: dict[str, str], device_url: str) -> dict[str, Any]:
    minted = admin.post("/api/v1/admin/pairing-sessions", headers=csrf).json()
    registered = httpx.post(
        f"{device_url}/api/devices/register", json=scan_body(minted["pairingUri"])
    )
    assert registered.status_code == 201, registered.text
    credentials: dict[str, Any] = registered.json()
    return credentials


def _access_token(server: ServerProcess, credentials: dict[str, Any]) -> str:
    response = httpx.post(
        f"{server.url}/api/devices/token",
        json={k: credentials[k] for k in ("deviceToken", "deviceSecret")},
    )
    assert response.status_code == 200, response.text
    return str(response.json()["accessToken"])


def _heartbeat(server: ServerProcess, token: str) -> httpx.Response:
    return httpx.post(
        f"{server.url}/api/devices/heartbeat",
        json={},
        headers={"Authorization": f"Bearer {token}"},
    )


def _eventually(check: Callable[[], bool], *, within: float) -> float:
    """Seconds it took `check` to hold; fails after `within`."""
    started = time.monotonic()
    while time.monotonic() - started < within:
        if check():
            return time.monotonic() - started
        time.sleep(0.2)
    raise AssertionError(f"still not true after {within} s")


def test_revocation_through_one_replica_stops_the_other_at_once(stack: Stack) -> None:
    with _admin(stack.a) as (admin, csrf):
        device = _pair(admin, csrf, stack.a.url)
        token = _access_token(stack.a, device)
        assert _heartbeat(stack.b, token).status_code == 200

        detail = admin.get(f"/api/v1/admin/devices/{device['deviceId']}").json()
        token_id = detail["tokens"][0]["tokenId"]
        revoked = admin.post(
            f"/api/v1/admin/devices/{device['deviceId']}/tokens/{token_id}/revoke", headers=csrf
        )
        assert revoked.status_code == 200

        refused = _heartbeat(stack.b, token)
        assert refused.status_code == 401
        assert refused.json()["code"] == "token_revoked"


def test_revocation_survives_a_flushed_redis(stack: Stack) -> None:
    with _admin(stack.a) as (admin, csrf):
        device = _pair(admin, csrf, stack.a.url)
        token = _access_token(stack.a, device)
        assert _heartbeat(stack.b, token).status_code == 200

        assert admin.delete(f"/api/v1/admin/devices/{device['deviceId']}", headers=csrf).status_code
        flush_stack_redis()

        assert _heartbeat(stack.b, token).json()["code"] == "token_revoked"
        # A replica started after the flush learns the revocation from the database.
        late = stack.start_replica()
        try:
            assert _heartbeat(late, token).json()["code"] == "token_revoked"
        finally:
            late.stop()


def test_worker_reports_a_silent_device_offline_and_expires_codes(stack: Stack) -> None:
    with _admin(stack.b) as (admin, csrf):
        device = _pair(admin, csrf, stack.a.url)
        unredeemed = admin.post("/api/v1/admin/pairing-sessions", headers=csrf).json()
        token = _access_token(stack.a, device)
        assert _heartbeat(stack.a, token).status_code == 200
        detail_url = f"/api/v1/admin/devices/{device['deviceId']}"

        def presence() -> list[bool]:
            return [c["online"] for c in admin.get(detail_url).json()["presenceChanges"]]

        _eventually(lambda: presence() == [True], within=10)
        silent_since = time.monotonic()
        _eventually(lambda: presence() == [False, True], within=ONLINE_WINDOW + SWEEP_EVERY + 10)
        took = time.monotonic() - silent_since
        assert took <= ONLINE_WINDOW + SWEEP_EVERY + 2, f"offline reported after {took:.1f} s"
        assert admin.get(detail_url).json()["online"] is False

        def expired_by_the_worker() -> bool:
            events = admin.get("/api/v1/admin/audit", params={"action": "pairing.expired"}).json()
            return any(e["target"]["id"] == unredeemed["pairingSessionId"] for e in events["items"])

        _eventually(expired_by_the_worker, within=CODE_TTL + 5)
        session = admin.get(f"/api/v1/admin/pairing-sessions/{unredeemed['pairingSessionId']}")
        assert session.json()["state"] == "expired"
        assert "job_failed" not in stack.worker.output()


REVOCATION_REQUESTS = int(os.environ.get("POLARIS_REVOCATION_REQUESTS", "10000"))
IN_FLIGHT_PER_REPLICA = 20
PUSH_TOKEN_BODY = {"pushToken": "c0ffee00" * 8, "apnsEnvironment": "production"}
# Every call the old access token or the old pair can make, in the mix a device sends them.
OLD_TOKEN_CALLS = ("heartbeat",) * 8 + ("token exchange", "push-token update")


@dataclass
class Answers:
    """Statuses (with problem codes) by replica and call, and when the first refusal came."""

    counts: Counter[tuple[str, str, int, str]] = field(default_factory=Counter)
    first_refusal_on_b_ms: float = 0.0
    revoke_ms: float = 0.0
    took: float = 0.0

    def successes(self) -> int:
        return sum(n for (_, _, status, _), n in self.counts.items() if status < 400)


def _old_token_requests(
    connection: KeptAliveConnection, token: str, device: dict[str, Any]
) -> dict[str, bytes]:
    """The bytes of each call, the same every time: built once, sent thousands of times."""
    bearer = {**JSON_HEADERS, "Authorization": f"Bearer {token}"}
    pair = orjson.dumps({k: device[k] for k in ("deviceToken", "deviceSecret")})
    return {
        "heartbeat": connection.encode("POST", HEARTBEAT, b"{}", bearer),
        "token exchange": connection.encode("POST", TOKEN, pair, JSON_HEADERS),
        "push-token update": connection.encode(
            "PUT", PUSH_TOKEN, orjson.dumps(PUSH_TOKEN_BODY), bearer
        ),
    }


async def _first_refusal_ms(
    url: str, token: str, device: dict[str, Any], revoked: asyncio.Event, answered_at: list[float]
) -> float:
    """Heartbeat replica b back to back until it refuses the token: ms after the revoke was
    answered (negative: refused before the answer reached the client)."""
    async with KeptAliveConnection(url) as connection:
        heartbeat = _old_token_requests(connection, token, device)["heartbeat"]
        while True:
            sent_after_the_answer = revoked.is_set()
            answer = await connection.send(heartbeat)
            now = time.monotonic()
            if answer.status == 401:
                assert answer.problem_code == "token_revoked", answer.body
                await revoked.wait()
                return (now - answered_at[0]) * 1000
            assert answer.status == 200, answer.body
            # A request sent once the revoke was answered must not pass.
            assert not sent_after_the_answer, "replica b accepted a revoked token"


async def _storm(
    urls: dict[str, str], token: str, device: dict[str, Any], answers: Answers
) -> None:
    """The requests alternate between the replicas; each replica has its own connections."""
    replicas = sorted(urls)
    pending = {
        r: iter(range(i, REVOCATION_REQUESTS, len(replicas))) for i, r in enumerate(replicas)
    }

    async def sender(replica: str) -> None:
        async with KeptAliveConnection(urls[replica]) as connection:
            requests = _old_token_requests(connection, token, device)
            for index in pending[replica]:
                call = OLD_TOKEN_CALLS[(index // len(replicas)) % len(OLD_TOKEN_CALLS)]
                answer = await connection.send(requests[call])
                answers.counts[(replica, call, answer.status, answer.problem_code)] += 1

    await asyncio.gather(
        *(sender(replica) for replica in replicas for _ in range(IN_FLIGHT_PER_REPLICA))
    )


async def _revoke_then_storm(stack: Stack, answers: Answers) -> None:
    urls = {"a": stack.a.url, "b": stack.b.url}
    with _admin(stack.a) as (admin, csrf):
        device = _pair(admin, csrf, stack.a.url)
        token = _access_token(stack.a, device)
        for url in urls.values():
            async with KeptAliveConnection(url) as connection:
                for call, request in _old_token_requests(connection, token, device).items():
                    answer = await connection.send(request)
                    assert answer.status in (200, 204), (call, answer.body)
        detail = admin.get(f"/api/v1/admin/devices/{device['deviceId']}").json()
        (credential,) = detail["tokens"]

        revoked, answered_at = asyncio.Event(), [0.0]
        watching = asyncio.create_task(
            _first_refusal_ms(stack.b.url, token, device, revoked, answered_at)
        )
        await asyncio.sleep(0.05)
        sent_at = time.monotonic()
        revoke = await asyncio.to_thread(
            admin.post,
            f"/api/v1/admin/devices/{device['deviceId']}/tokens/{credential['tokenId']}/revoke",
            headers=csrf,
        )
        answered_at[0] = time.monotonic()
        revoked.set()
        assert revoke.status_code == 200, revoke.text
        answers.revoke_ms = (answered_at[0] - sent_at) * 1000
        answers.first_refusal_on_b_ms = await asyncio.wait_for(watching, timeout=10)

    started = time.monotonic()
    await _storm(urls, token, device, answers)
    answers.took = time.monotonic() - started


def test_revoked_access_token_gets_nothing_from_either_replica(tmp_path: Path) -> None:
    answers = Answers()
    # The heartbeats before the revoke come back to back: no per-device budget may refuse one.
    with running_stack(tmp_path, HEARTBEATS_PER_DEVICE="1000000/minute") as stack:
        asyncio.run(_revoke_then_storm(stack, answers))

    by_status = Counter[tuple[int, str]]()
    for (_, _, status, code), count in answers.counts.items():
        by_status[(status, code)] += count
    per_replica = Counter(replica for (replica, _, _, _) in answers.counts.elements())
    print(
        f"\nrevocation over two replicas: {REVOCATION_REQUESTS} requests with the old access "
        f"token and pair in {answers.took:.2f} s ({REVOCATION_REQUESTS / answers.took:,.0f}/s, "
        f"{IN_FLIGHT_PER_REPLICA} in flight per replica); per replica: "
        f"{', '.join(f'{r} {n}' for r, n in sorted(per_replica.items()))}; statuses: "
        f"{', '.join(f'{s} {c} x{n}' for (s, c), n in sorted(by_status.items()))}; "
        f"successes: {answers.successes()}"
    )
    for (replica, call, status, code), count in sorted(answers.counts.items()):
        print(f"  replica {replica}, {call}: {status} {code} x{count}")
    print(
        f"first refusal on replica b: {answers.first_refusal_on_b_ms:.1f} ms after the revoke "
        f"through replica a was answered (the revoke took {answers.revoke_ms:.1f} ms)"
    )
    assert answers.successes() == 0
    assert by_status == {(401, "token_revoked"): REVOCATION_REQUESTS}
    assert per_replica == {"a": (REVOCATION_REQUESTS + 1) // 2, "b": REVOCATION_REQUESTS // 2}
