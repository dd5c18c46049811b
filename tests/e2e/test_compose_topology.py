"""docker-compose.yml as deployed: the file validates, and its commands and environment run
the same topology as local processes (no Docker engine here): a one-shot migration, two app
processes and a worker on PostgreSQL + Redis, pairing a device across the two apps."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from simulator.admin import AdminApi, admin_http_client
from simulator.protocol import DeviceApi, PkcePair, device_http_client
from tests import backends
from tests.compose import COMPOSE_FILE, PolarisService, polaris_services
from tests.e2e.conftest import STACK_REDIS_URL, flush_stack_redis
from tests.harness import REPO_ROOT, ServerProcess, WorkerProcess, base_env, free_port, run_cli
from tests.scanner import DOCK_SCANNER

SECRETS = {
    "SECRET_KEY": "compose-secret-key-shared-by-every-process-0123456789",
    "POSTGRES_PASSWORD": "compose-password",
    "PUBLIC_BASE_URL": "http://polaris.compose.test",
}
ADMIN_EMAIL, ADMIN_PASSWORD = "compose-admin@example.com", "compose-admin-password"
SERVICES = polaris_services()


def _compose_config(env_file: Path, **environment: str) -> subprocess.CompletedProcess[str]:
    executable = shutil.which("docker-compose")
    if executable is None:
        if backends.IN_CI:
            pytest.fail("CI=true but docker-compose is not installed (scripts/test installs it)")
        pytest.skip("docker-compose is not installed; `apt-get install docker-compose`")
    # An empty env file of our own: a developer's .env must not fill in what is missing.
    command = [executable, "--env-file", str(env_file), "-f", str(COMPOSE_FILE), "config", "-q"]
    return subprocess.run(
        command,
        env={"PATH": "/usr/bin:/bin", **environment},
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_docker_compose_accepts_the_file_with_its_secrets(tmp_path: Path) -> None:
    empty = tmp_path / "empty.env"
    empty.write_text("")
    checked = _compose_config(empty, **SECRETS)
    assert checked.returncode == 0, checked.stderr


def test_docker_compose_refuses_to_start_without_a_secret_key(tmp_path: Path) -> None:
    empty = tmp_path / "empty.env"
    empty.write_text("")
    without = {k: v for k, v in SECRETS.items() if k != "SECRET_KEY"}
    checked = _compose_config(empty, **without)
    assert checked.returncode != 0
    assert "SECRET_KEY" in checked.stderr


def _local(service: PolarisService, workdir: Path, database_url: str) -> dict[str, str]:
    """The service's environment, with the compose network's hosts replaced by this
    machine's PostgreSQL and Redis. The apps speak plain HTTP here (TLS terminates in front
    of them in production), so they run in development mode: production marks the session
    cookie Secure, which no client sends over plain HTTP."""
    environment = service.resolved_environment(SECRETS)
    environment.update(
        DATABASE_URL=database_url, REDIS_URL=STACK_REDIS_URL, POLARIS_ENV="development"
    )
    return base_env(workdir, **environment)


def _with_local_address(command: list[str], port: int) -> list[str]:
    replaced = list(command)
    replaced[replaced.index("--host") + 1] = "127.0.0.1"
    replaced[replaced.index("--port") + 1] = str(port)
    return replaced


@dataclass
class ComposeApp(ServerProcess):
    """The `app` service's own command, on a local port."""

    command: list[str] = field(default_factory=lambda: SERVICES["app"].command)

    def start(self, timeout: float = 60) -> ComposeApp:
        self.spawn(_with_local_address(self.command, self.port), self.env)
        self.wait_until(self._healthy, timeout, "app")
        return self


@dataclass
class ComposeWorker(WorkerProcess):
    """The `worker` service's own command."""

    command: list[str] = field(default_factory=lambda: SERVICES["worker"].command)

    def start(self, timeout: float = 30) -> ComposeWorker:
        self.spawn(self.command, self.env)
        self.wait_until(lambda: "worker_started" in self.output(), timeout, "worker")
        return self


@dataclass
class Topology:
    a: ComposeApp
    b: ComposeApp
    worker: ComposeWorker


@pytest.fixture
def topology(tmp_path: Path) -> Iterator[Topology]:
    database_url = backends.fresh_postgres_database(backends.POSTGRES_URL, "polaris_compose")
    flush_stack_redis()
    migrated = run_cli(
        SERVICES["migrate"].command, _local(SERVICES["migrate"], tmp_path, database_url)
    )
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    app_env = _local(SERVICES["app"], tmp_path, database_url)
    created = run_cli(
        ["create-admin", "--email", ADMIN_EMAIL, "--password", ADMIN_PASSWORD], app_env
    )
    assert created.returncode == 0, created.stdout + created.stderr
    started: list[ServerProcess | WorkerProcess] = []
    try:
        a = ComposeApp(tmp_path, app_env, port=free_port()).start()
        started.append(a)
        b = ComposeApp(tmp_path, app_env, port=free_port()).start()
        started.append(b)
        worker_env = _local(SERVICES["worker"], tmp_path, database_url)
        worker = ComposeWorker(tmp_path, worker_env).start()
        started.append(worker)
        yield Topology(a, b, worker)
    finally:
        for process in started:
            process.stop()


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.slow
async def test_a_device_pairs_through_one_app_while_the_admin_uses_the_other(
    topology: Topology,
) -> None:
    async with (
        admin_http_client(topology.a.url) as admin_client,
        device_http_client(topology.b.url) as device_client,
    ):
        admin = AdminApi(admin_client)
        await admin.login(ADMIN_EMAIL, ADMIN_PASSWORD)
        minted = await admin.mint_code()
        device = DeviceApi(device_client)
        credentials = await device.register_scanned(
            minted.pairing_uri, pkce=PkcePair.generate(), fields=DOCK_SCANNER
        )
        access = await device.access_token(credentials)
        await device.heartbeat(access)

        shown = await admin.device(credentials.device_id)
        assert shown["label"] == DOCK_SCANNER.label
        # The other app batches presence into Redis every ~100 ms: online shortly after.
        deadline = time.monotonic() + 5
        while not shown["online"] and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            shown = await admin.device(credentials.device_id)
        assert shown["online"] is True
        assert (await admin.pairing_session(minted.pairing_session_id))["state"] == "redeemed"
