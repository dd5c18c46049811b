"""`polaris demo`: the console comes alive with a simulated fleet and one device waiting."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.harness import ChildProcess, base_env, free_port

DEMO_FLEET = 11


@dataclass
class DemoProcess(ChildProcess):
    port: int = field(default_factory=free_port)

    @property
    def log_path(self) -> Path:
        return self.workdir / "demo.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 90) -> DemoProcess:
        self.spawn(["demo", "--port", str(self.port)], self.env)
        self.wait_until(lambda: "Waiting for approval" in self.output(), timeout, "demo")
        return self

    def printed(self, label: str) -> str:
        found = re.search(rf"{label}\s+(\S+)", self.output())
        assert found, self.output()
        return found.group(1)


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[DemoProcess]:
    process = DemoProcess(tmp_path, base_env(tmp_path)).start()
    try:
        yield process
    finally:
        process.stop()


def _sign_in(client: httpx.Client, demo: DemoProcess) -> dict[str, str]:
    login = client.post(
        "/api/v1/auth/login",
        json={"email": demo.printed("Email"), "password": demo.printed("Password")},
    )
    assert login.status_code == 200, login.text
    return {"X-CSRF-Token": login.json()["csrfToken"]}


@pytest.mark.slow
def test_the_demo_fleet_is_paired_and_online(demo: DemoProcess) -> None:
    with httpx.Client(base_url=demo.url, timeout=10) as client:
        _sign_in(client, demo)
        listed = client.get("/api/v1/admin/devices", params={"kind": "scanner"}).json()["items"]
        assert len(listed) == DEMO_FLEET
        assert len({device["model"] for device in listed}) > 1  # iPhones, iPads and Macs
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            listed = client.get("/api/v1/admin/devices", params={"kind": "scanner"}).json()
            if sum(d["online"] for d in listed["items"]) >= DEMO_FLEET // 2:
                break
            time.sleep(0.5)
        assert sum(d["online"] for d in listed["items"]) >= DEMO_FLEET // 2


@pytest.mark.slow
def test_the_waiting_device_pairs_once_the_admin_approves(demo: DemoProcess) -> None:
    session_id = re.findall(r"pairing session ([0-9a-f-]{36})", demo.output())[-1]
    with httpx.Client(base_url=demo.url, timeout=10) as client:
        csrf = _sign_in(client, demo)
        waiting = client.get(f"/api/v1/admin/pairing-sessions/{session_id}").json()
        assert waiting["state"] == "pending_approval"
        assert waiting["pendingDevice"]["label"] == "Loading dock iPad"
        approved = client.post(
            f"/api/v1/admin/pairing-sessions/{session_id}/approve", json={}, headers=csrf
        )
        assert approved.status_code == 200, approved.text
        demo.wait_until(lambda: "was approved and paired" in demo.output(), 30, "approval")
