from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from tests import backends
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
STACK_REDIS_URL = backends.REDIS_URL.rsplit("/", 1)[0] + "/14"
# Short enough that presence and expiry are seen within seconds, not minutes.
ONLINE_WINDOW = 3
SWEEP_EVERY = 1
CODE_TTL = 4


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


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    database_url = backends.fresh_postgres_database(backends.POSTGRES_URL, "polaris_replicas")
    flush_stack_redis()
    env = base_env(
        tmp_path,
        DATABASE_URL=database_url,
        REDIS_URL=STACK_REDIS_URL,
        SECRET_KEY="replica-secret-key-shared-by-every-process-0123456789",
        # One public address for every replica: it is the access tokens' issuer.
        PUBLIC_BASE_URL="http://polaris.replicas.test",
        HEARTBEAT_ONLINE_WINDOW_SECONDS=str(ONLINE_WINDOW),
        PRESENCE_SWEEP_EVERY_SECONDS=str(SWEEP_EVERY),
        EXPIRE_SESSIONS_EVERY_SECONDS="1",
        LAST_SEEN_FLUSH_EVERY_SECONDS="1",
        PAIRING_CODE_TTL_SECONDS=str(CODE_TTL),
        LOG_JSON="true",
    )
    assert run_cli(["migrate"], env).returncode == 0
    created = run_cli(
        ["create-admin", "--email", STACK_ADMIN_EMAIL, "--password", STACK_ADMIN_PASSWORD], env
    )
    assert created.returncode == 0, created.stdout + created.stderr
    started: list[ServerProcess | WorkerProcess] = []
    try:
        a = ServerProcess(tmp_path, env).start()
        started.append(a)
        b = ServerProcess(tmp_path, env).start()
        started.append(b)
        worker = WorkerProcess(tmp_path, env).start()
        started.append(worker)
        yield Stack(a, b, worker, env)
    finally:
        for process in started:
            process.stop()
