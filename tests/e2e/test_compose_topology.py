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

import httpx
import pytest

from simulator.admin import AdminApi, admin_http_client
from simulator.protocol import HEARTBEAT, AccessToken, DeviceApi, PkcePair, device_http_client
from tests import backends
from tests.compose import COMPOSE_FILE, PolarisService, polaris_services
from tests.e2e.conftest import STACK_REDIS_URL, flush_stack_redis
from tests.harness import REPO_ROOT, ServerProcess, WorkerProcess, base_env, free_port, run_cli
from tests.scanner import DOCK_SCANNER
from tests.scrape import Scrape, delta

SECRETS = {
    "SECRET_KEY": "compose-secret-key-shared-by-every-process-0123456789",
    "POSTGRES_PASSWORD": "compose-password",
    "PUBLIC_BASE_URL": "http://polaris.compose.test",
    "METRICS_TOKEN": "compose-metrics-token-0123456789",
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
    """The `worker` service's own command, its metrics on a local port."""

    command: list[str] = field(default_factory=lambda: SERVICES["worker"].command)
    metrics_port: int = field(default_factory=free_port)

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def start(self, timeout: float = 30) -> ComposeWorker:
        command = list(self.command)
        command[command.index("--metrics-port") + 1] = str(self.metrics_port)
        self.spawn(command, self.env)
        self.wait_until(lambda: "worker_started" in self.output(), timeout, "worker")
        return self


@dataclass
class Topology:
    a: ComposeApp
    b: ComposeApp
    worker: ComposeWorker


# One topology for the module: starting it costs more than the tests that use it.
@pytest.fixture(scope="module")
def topology(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Topology]:
    tmp_path = tmp_path_factory.mktemp("compose")
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


async def _scrape(url: str, token: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    # A connection of its own each time: any of the app's workers may answer.
    async with httpx.AsyncClient(timeout=10) as client:
        return await client.get(url, headers=headers)


async def _heartbeat_on_fresh_connections(url: str, access: AccessToken, count: int) -> None:
    """`count` heartbeats, each on a new connection, several at once, so the kernel hands
    them to both of the app's worker processes."""
    no_reuse = httpx.Limits(max_connections=4, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=url, limits=no_reuse, timeout=15) as client:
        device = DeviceApi(client)
        await asyncio.gather(*(device.heartbeat(access) for _ in range(count)))


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.slow
async def test_one_scrape_of_an_app_sums_its_two_workers(topology: Topology) -> None:
    metrics_url = f"{topology.a.url}/metrics"
    token = SECRETS["METRICS_TOKEN"]
    assert (await _scrape(metrics_url)).status_code == 401
    before = Scrape((await _scrape(metrics_url, token)).text)

    async with admin_http_client(topology.a.url) as admin_client:
        admin = AdminApi(admin_client)
        await admin.login(ADMIN_EMAIL, ADMIN_PASSWORD)
        async with device_http_client(topology.a.url) as device_client:
            device = DeviceApi(device_client)
            paired = []
            for _ in range(3):
                minted = await admin.mint_code()
                paired.append(
                    await device.register_scanned(
                        minted.pairing_uri, pkce=PkcePair.generate(), fields=DOCK_SCANNER
                    )
                )
            tokens = [await device.access_token(credentials) for credentials in paired]
    # Under each device's per-process heartbeat budget, whichever worker takes them.
    for access in tokens:
        await _heartbeat_on_fresh_connections(topology.a.url, access, 8)
    heartbeats = {"method": "POST", "route": HEARTBEAT, "status": "200"}
    # Each worker hands its fast-path tallies over once a second (app.metrics.RouteTally).
    deadline = time.monotonic() + 5
    while True:
        scraped = await _scrape(metrics_url, token)
        after = Scrape(scraped.text)
        counted = delta(before, after, "polaris_http_requests_total", **heartbeats)
        if counted >= 24 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)

    assert scraped.status_code == 200
    assert after.value("polaris_serving_processes") == 2
    assert delta(before, after, "polaris_heartbeats_total") == 24
    assert delta(before, after, "polaris_http_requests_total", **heartbeats) == 24
    assert delta(before, after, "polaris_pairing_outcomes_total", reason="redeemed") == 3
    assert delta(before, after, "polaris_token_exchanges_total", outcome="issued") == 3
    assert after.value("polaris_backend_up", backend="redis") == 1
    assert after.value("polaris_devices_online") >= 3
    # Every scrape, whichever worker answers it, reports the same sums.
    again = Scrape((await _scrape(metrics_url, token)).text)
    assert again.value("polaris_heartbeats_total") == after.value("polaris_heartbeats_total")


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.slow
async def test_the_worker_serves_its_job_metrics(topology: Topology) -> None:
    # The presence sweep runs every 5 s.
    deadline = time.monotonic() + 15
    ran = 0.0
    while ran == 0 and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        ran = Scrape((await _scrape(topology.worker.metrics_url)).text).value(
            "polaris_job_runs_total", job="sweep_presence"
        )

    assert ran >= 1
