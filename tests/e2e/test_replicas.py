"""Production shape: two `polaris serve` replicas and an arq worker on PostgreSQL + Redis."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import (
    STACK_ADMIN_EMAIL,
    STACK_ADMIN_PASSWORD,
    Stack,
    flush_stack_redis,
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
