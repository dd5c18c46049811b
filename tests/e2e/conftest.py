from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis

from tests import backends
from tests.e2e.simulator_fixtures import (
    CODE_TTL,
    ONLINE_WINDOW,
    SHORT_WINDOWS,
    SWEEP_EVERY,
    Target,
)
from tests.harness import ServerProcess, WorkerProcess, base_env, run_cli


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture
def server(workdir: Path) -> Iterator[ServerProcess]:
    process = ServerProcess(workdir, base_env(workdir)).start()
    try:
        yield process
    finally:
        process.stop()


STACK_ADMIN_EMAIL = "ops-lead@example.com"
STACK_ADMIN_PASSWORD = "replica test password 42"


def _stack_redis_url(suite_redis_url: str) -> str:
    # The db beside the suite's own (15 -> 14 by default), so runs given different
    # POLARIS_TEST_REDIS_URL dbs never flush each other's stack.
    base, _, db = suite_redis_url.rpartition("/")
    number = int(db) if db.isdigit() else 15
    return f"{base}/{number - 1 if number > 0 else number + 1}"


def _stack_database(suite_postgres_url: str) -> str:
    # Named after the suite's database ("test" keeps the historical name), so runs given
    # different POLARIS_TEST_POSTGRES_URL databases never drop each other's stack.
    name = urlsplit(suite_postgres_url).path.lstrip("/") or "test"
    return "polaris_replicas" if name == "test" else f"{name}_replicas"


STACK_REDIS_URL = _stack_redis_url(backends.REDIS_URL)
STACK_DATABASE = _stack_database(backends.POSTGRES_URL)


@dataclass
class Stack:
    """Two `polaris serve` replicas and an arq worker on PostgreSQL + Redis."""

    a: ServerProcess
    b: ServerProcess
    worker: WorkerProcess
    env: dict[str, str]

    def start_replica(self) -> ServerProcess:
        return ServerProcess(self.a.workdir, self.env).start()


def flush_stack_redis() -> None:
    with redis.Redis.from_url(STACK_REDIS_URL) as connection:
        connection.flushdb()


@contextmanager
def running_stack(
    workdir: Path, *, database: str = STACK_DATABASE, **overrides: str
) -> Iterator[Stack]:
    """Start the stack in `workdir`; `overrides` add to (or replace) its environment."""
    database_url = backends.fresh_postgres_database(backends.POSTGRES_URL, database)
    flush_stack_redis()
    defaults = {
        "DATABASE_URL": database_url,
        "REDIS_URL": STACK_REDIS_URL,
        "SECRET_KEY": "replica-secret-key-shared-by-every-process-0123456789",
        # One public address for every replica: it is the access tokens' issuer.
        "PUBLIC_BASE_URL": "http://polaris.replicas.test",
        "HEARTBEAT_ONLINE_WINDOW_SECONDS": str(ONLINE_WINDOW),
        "PRESENCE_SWEEP_EVERY_SECONDS": str(SWEEP_EVERY),
        "EXPIRE_SESSIONS_EVERY_SECONDS": "1",
        "LAST_SEEN_FLUSH_EVERY_SECONDS": "1",
        "PAIRING_CODE_TTL_SECONDS": str(CODE_TTL),
        "LOG_JSON": "true",
    }
    env = base_env(workdir, **{**defaults, **overrides})
    assert run_cli(["migrate"], env).returncode == 0
    created = run_cli(
        ["create-admin", "--email", STACK_ADMIN_EMAIL, "--password", STACK_ADMIN_PASSWORD], env
    )
    assert created.returncode == 0, created.stdout + created.stderr
    started: list[ServerProcess | WorkerProcess] = []
    try:
        a = ServerProcess(workdir, env).start()
        started.append(a)
        b = ServerProcess(workdir, env).start()
        started.append(b)
        worker = WorkerProcess(workdir, env).start()
        started.append(worker)
        yield Stack(a, b, worker, env)
    finally:
        for process in started:
            process.stop()


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    with running_stack(tmp_path) as started:
        yield started


@pytest.fixture(
    scope="module",
    params=[
        pytest.param("embedded", id="embedded"),
        pytest.param("stack", id="stack", marks=[pytest.mark.postgres, pytest.mark.redis]),
    ],
)
def target(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Target]:
    """Where the simulator plays: the embedded server, or (postgres pass) the replica stack.

    Each backend's pass runs its own: the stack's tests carry the postgres/redis markers.
    One deployment per test module keeps the suite fast; tests never share devices (every
    simulated phone has a fresh serial), and the windows are short (SHORT_WINDOWS).
    """
    workdir = tmp_path_factory.mktemp(f"sim-{request.param}")
    if request.param == "embedded":
        server = ServerProcess(workdir, base_env(workdir, **SHORT_WINDOWS)).start()
        try:
            email, password = server.first_admin()
            yield Target("embedded", server.url, server.url, email, password)
        finally:
            server.stop()
        return
    # Its own database, so it never meets the `stack` fixture's.
    with running_stack(workdir, database=f"{STACK_DATABASE}_sim", **SHORT_WINDOWS) as stack:
        # Devices on one replica, the admin on the other: presence and revocations cross.
        yield Target("stack", stack.b.url, stack.a.url, STACK_ADMIN_EMAIL, STACK_ADMIN_PASSWORD)
