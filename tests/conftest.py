from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
from redis.asyncio import Redis
from starlette.applications import Starlette
from tortoise import Tortoise

from app import clock, db
from app.auth import passwords
from app.edge.runtime import runtime
from app.main import create_app
from app.models import (
    AuditEvent,
    ConsoleSession,
    Device,
    DeviceToken,
    IdempotentAnswer,
    OutboxEvent,
    PairingAttempt,
    PairingSession,
    PresenceChange,
    SigningKey,
    User,
    WebhookDelivery,
    WebhookEndpoint,
)
from app.services import signing_keys
from app.settings import Settings
from tests import backends

BACKEND = backends.selected()

# Argon2 still, at a thousandth of the recommended memory and a third of its passes: the
# suite signs in thousands of times, and each recommended hash costs ~0.2 s of CPU. Servers
# the suite starts as processes (e2e, browser) hash as a deployment does.
passwords.use_hasher(PasswordHash((Argon2Hasher(time_cost=1, memory_cost=64, parallelism=1),)))
# Children before parents, so foreign keys never block the wipe between tests.
TABLES = (
    WebhookDelivery,
    WebhookEndpoint,
    OutboxEvent,
    PairingAttempt,
    AuditEvent,
    IdempotentAnswer,
    PresenceChange,
    DeviceToken,
    PairingSession,
    Device,
    ConsoleSession,
    User,
    SigningKey,
)


def pytest_report_header() -> list[str]:
    return [
        f"polaris backend: {BACKEND.name} (database={BACKEND.database_url or 'sqlite file'}, "
        f"redis={BACKEND.redis_url or 'none: in-memory'})"
    ]


def pytest_configure(config: pytest.Config) -> None:
    missing = backends.unreachable_services(BACKEND)
    if missing and backends.IN_CI:
        pytest.exit(f"CI=true but unreachable: {', '.join(missing)}", returncode=3)
    config.stash[_MISSING] = missing


_MISSING = pytest.StashKey[list[str]]()


def _needs_services(item: pytest.Item) -> bool:
    return bool(item.get_closest_marker("postgres") or item.get_closest_marker("redis"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    missing = config.stash[_MISSING]
    if BACKEND.is_postgres:
        # Processes started by e2e and browser tests pick their own backend; of those, the
        # postgres pass runs only the ones written for PostgreSQL + Redis.
        embedded_only = [
            item
            for item in items
            if item.path.parent.name in ("e2e", "browser") and not _needs_services(item)
        ]
        if embedded_only:
            config.hook.pytest_deselected(items=embedded_only)
            items[:] = [item for item in items if item not in embedded_only]
    for item in items:
        if missing:
            item.add_marker(pytest.mark.skip(reason=f"unreachable: {', '.join(missing)}"))
        elif not BACKEND.is_postgres and _needs_services(item):
            item.add_marker(pytest.mark.skip(reason="runs in the postgres+redis pass"))


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    if BACKEND.database_url is None:
        return f"sqlite://{tmp_path_factory.mktemp('db') / 'polaris.db'}"
    backends.reset_postgres_sync(BACKEND.database_url)
    return BACKEND.database_url


@pytest.fixture(scope="session")
async def migrated(database_url: str) -> str:
    await db.migrate(database_url)
    return database_url


@pytest.fixture
def settings(migrated: str, tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    """The suite's settings, with the overrides a test passes by indirect parametrize."""
    return Settings(
        database_url=migrated,
        redis_url=BACKEND.redis_url,
        secret_key="test-secret-key-with-enough-entropy-0123456789",
        data_dir=tmp_path / "data",
        public_base_url="http://testserver",
        auto_migrate=False,
        embedded_scheduler=False,
        log_json=True,
    ).model_copy(update=getattr(request, "param", {}))


@pytest.fixture(autouse=True)
def _real_clock() -> Iterator[None]:
    clock.reset()
    yield
    clock.reset()


async def _wipe(redis_url: str | None) -> None:
    for model in TABLES:
        await model.all().delete()
    if redis_url is not None:
        redis = Redis.from_url(redis_url)
        try:
            await redis.flushdb()
        finally:
            await redis.aclose()


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[Starlette]:
    application = create_app(settings)
    async with LifespanManager(application):
        await _wipe(settings.redis_url)
        # A signing key left by an earlier test (perhaps made on a moved clock) must not
        # outrank this test's own.
        runtime(application).keyring = await signing_keys.load_keyring(settings)
        yield application


@pytest.fixture
async def orm(settings: Settings) -> AsyncIterator[None]:
    """Tortoise without the app, for service-level tests."""
    await Tortoise.init(config=db.tortoise_config(settings.database_url))
    try:
        await _wipe(settings.redis_url)
        yield
    finally:
        await Tortoise.close_connections()


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


@pytest.fixture
async def device_client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    """A scanner app: no cookies, its own address."""
    transport = httpx.ASGITransport(app=app, client=("198.51.100.23", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c
