"""Webhooks end to end: a real `polaris serve` (and on PostgreSQL + Redis a real `polaris
worker`) delivers every event type it emits, signed, to a receiver on 127.0.0.1; and an
event whose change committed survives the app process being SIGKILLed at once."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from simulator.admin import LOGIN, AdminApi, admin_http_client
from simulator.problems import ProblemError
from simulator.protocol import Credentials, DeviceApi, PkcePair, device_http_client
from tests import backends
from tests.e2e.conftest import (
    STACK_ADMIN_EMAIL,
    STACK_ADMIN_PASSWORD,
    STACK_DATABASE,
    STACK_REDIS_URL,
    flush_stack_redis,
)
from tests.e2e.simulator_fixtures import RACE_WINDOW, SHORT_WINDOWS
from tests.harness import ChildProcess, ServerProcess, WorkerProcess, base_env, run_cli
from tests.scanner import DOCK_SCANNER
from tests.webhook_receiver import Receiver

WEBHOOKS = "/api/v1/admin/webhooks"
FAST = {
    **SHORT_WINDOWS,
    "WEBHOOK_ALLOW_PRIVATE_NETWORKS": "true",
    "WEBHOOK_DELIVERY_EVERY_SECONDS": "1",
    "WEBHOOK_RETRY_SCHEDULE": "1,1",
    "LOG_JSON": "true",
}
# Nothing leaves the outbox while this process runs: what it commits waits for the next one.
NO_DELIVERY = {"WEBHOOK_DELIVERY_EVERY_SECONDS": "3600"}


@dataclass
class Prepared:
    """A migrated database with an admin, shared by the module's tests."""

    workdir: Path
    env: dict[str, str]
    postgres: bool
    email: str | None = None
    password: str | None = None


@dataclass
class Deployment:
    """The app, and on PostgreSQL the worker that runs its jobs."""

    prepared: Prepared
    server: ServerProcess | None = None
    worker: WorkerProcess | None = None

    def start(self, *, jobs: bool = True, **overrides: str) -> ServerProcess:
        prepared = self.prepared
        env = {**prepared.env, **overrides}
        self.server = ServerProcess(prepared.workdir, env).start()
        if prepared.email is None:
            # Embedded, the first start creates the first admin and prints its password.
            prepared.email, prepared.password = self.server.first_admin()
        if prepared.postgres and jobs:
            self.worker = WorkerProcess(prepared.workdir, env).start()
        return self.server

    async def sign_in(self, client: httpx.AsyncClient) -> AdminApi:
        """A console session; the client sends its CSRF token on every call."""
        login = {"email": self.prepared.email, "password": self.prepared.password}
        answer = await client.post(LOGIN, json=login)
        assert answer.status_code == 200, answer.text
        client.headers["X-CSRF-Token"] = answer.json()["csrfToken"]
        return AdminApi(client)

    def kill_server(self) -> None:
        assert self.server is not None
        assert self.server.process is not None
        os.killpg(self.server.process.pid, signal.SIGKILL)
        self.server.process.wait(timeout=10)

    def stop(self) -> None:
        processes: list[ChildProcess | None] = [self.worker, self.server]
        for process in processes:
            if process is not None:
                process.stop()


@pytest.fixture(
    scope="module",
    params=[
        pytest.param(False, id="embedded"),
        pytest.param(True, id="postgres", marks=[pytest.mark.postgres, pytest.mark.redis]),
    ],
)
def prepared(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Prepared:
    postgres: bool = request.param
    workdir = tmp_path_factory.mktemp("webhooks")
    env = base_env(workdir, **FAST)
    if not postgres:
        return Prepared(workdir, env, postgres)
    flush_stack_redis()
    database_url = backends.fresh_postgres_database(
        backends.POSTGRES_URL, f"{STACK_DATABASE}_webhooks"
    )
    env |= {
        "DATABASE_URL": database_url,
        "REDIS_URL": STACK_REDIS_URL,
        "SECRET_KEY": "webhook-e2e-secret-key-shared-by-every-process-0123456789",
    }
    assert run_cli(["migrate"], env).returncode == 0
    created = run_cli(
        ["create-admin", "--email", STACK_ADMIN_EMAIL, "--password", STACK_ADMIN_PASSWORD], env
    )
    assert created.returncode == 0, created.stdout + created.stderr
    return Prepared(workdir, env, postgres, STACK_ADMIN_EMAIL, STACK_ADMIN_PASSWORD)


@pytest.fixture
def deployment(prepared: Prepared) -> Iterator[Deployment]:
    deployed = Deployment(prepared)
    try:
        yield deployed
    finally:
        deployed.stop()


@pytest.fixture
async def receiver() -> Any:
    server = await Receiver().start()
    yield server
    await server.stop()


async def add_endpoint(client: httpx.AsyncClient, url: str) -> str:
    created = await client.post(WEBHOOKS, json={"url": url, "events": ["*"]})
    assert created.status_code == 201, created.text
    secret: str = created.json()["secret"]
    return secret


async def pair(admin: AdminApi, device: DeviceApi) -> Credentials:
    minted = await admin.mint_code()
    return await device.register_scanned(
        minted.pairing_uri, pkce=PkcePair.generate(), fields=DOCK_SCANNER
    )


async def arrived_types(receiver: Receiver, secret: str, wanted: set[str]) -> list[str]:
    """Every type received until `wanted` have all come, each payload's signature checked."""
    async with asyncio.timeout(20):
        while True:
            types = [r.verified(secret)["type"] for r in receiver.received]
            if wanted <= set(types):
                return types
            receiver.arrived.clear()
            await receiver.arrived.wait()


async def test_a_committed_registration_is_delivered_after_the_app_is_killed_and_retried(
    deployment: Deployment, receiver: Receiver
) -> None:
    server = deployment.start(jobs=False, **NO_DELIVERY)
    async with (
        admin_http_client(server.url) as client,
        device_http_client(server.url) as device_client,
    ):
        admin = await deployment.sign_in(client)
        secret = await add_endpoint(client, receiver.url)
        device = await pair(admin, DeviceApi(device_client))
    deployment.kill_server()
    assert receiver.received == []
    # The receiver is down for the first two attempts: retried after 1 s, then 1 s more.
    receiver.fail_first = 2

    # Embedded, the restarted server runs the jobs; on PostgreSQL, the worker.
    deployment.start()

    attempts = await receiver.wait_for(3, seconds=30)
    payloads = [attempt.verified(secret) for attempt in attempts]
    assert {attempt.headers["webhook-id"] for attempt in attempts} == {payloads[0]["id"]}
    assert payloads[0] == payloads[1] == payloads[2]
    assert payloads[0]["type"] == "device.registered"
    assert payloads[0]["data"]["deviceId"] == device.device_id


async def test_every_emitted_event_type_arrives_signed(
    deployment: Deployment, receiver: Receiver
) -> None:
    server = deployment.start()
    async with (
        admin_http_client(server.url) as client,
        device_http_client(server.url) as device_client,
    ):
        admin = await deployment.sign_in(client)
        device_api = DeviceApi(device_client)
        secret = await add_endpoint(client, receiver.url)
        scanner = await pair(admin, device_api)
        await device_api.heartbeat(await device_api.access_token(scanner))
        rotated = await device_api.rotate(scanner)
        assert rotated.device_token != scanner.device_token

        typed = await admin.mint_code()
        pkce = PkcePair.generate()
        pending = await device_api.register_typed(typed.code, pkce=pkce, fields=DOCK_SCANNER)
        await admin.approve(typed.pairing_session_id)
        other = await device_api.wait_for_approval(pending, pkce, within=10)
        detail = await admin.device(other.device_id)
        await admin.revoke_token(other.device_id, detail["tokens"][0]["tokenId"])
        await admin.deregister(other.device_id)

        phone = await admin.connect_admin_app(
            device_name="Ops phone", device_identifier="E2E-WEBHOOK-PHONE"
        )
        revoked = await client.delete(f"/api/v1/admin/app/devices/{phone.device_id}")
        assert revoked.status_code == 204, revoked.text

        await asyncio.sleep(RACE_WINDOW + 0.5)
        # The rotated-out pair again, past the race window: a kept copy.
        with pytest.raises(ProblemError):
            await device_api.access_token(scanner)

        types = await arrived_types(
            receiver,
            secret,
            {
                "device.registered",
                "pairing.pending_approval",
                "device.online",
                "device.offline",
                "device.token.revoked",
                "device.deregistered",
                "device.token.reuse_detected",
                "app.device.connected",
                "app.device.revoked",
            },
        )
    print(f"\n{len(types)} deliveries: {sorted(set(types))}")
    assert types.count("device.registered") == 2
    ids = [r.headers["webhook-id"] for r in receiver.received]
    assert len(set(ids)) == len(ids), "each event is delivered once"
