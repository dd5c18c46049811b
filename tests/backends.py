"""Which real backends this pytest process runs against.

The suite runs once per backend, in separate processes (Tortoise caches SQL per
connection name, so one process never switches engines): `embedded` is SQLite with
in-memory presence and rate limits, `postgres` is PostgreSQL with Redis.
"""

from __future__ import annotations

import asyncio
import os
import socket
from dataclasses import dataclass

POSTGRES_URL = os.environ.get(
    "POLARIS_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("POLARIS_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
IN_CI = os.environ.get("CI", "").lower() == "true"


@dataclass(frozen=True)
class Backend:
    name: str
    database_url: str | None  # None: a fresh SQLite file per session
    redis_url: str | None

    @property
    def is_postgres(self) -> bool:
        return self.name == "postgres"


def selected() -> Backend:
    name = os.environ.get("POLARIS_TEST_BACKEND", "embedded")
    if name == "postgres":
        return Backend("postgres", POSTGRES_URL, REDIS_URL)
    if name == "embedded":
        return Backend("embedded", None, None)
    raise ValueError(f"POLARIS_TEST_BACKEND must be embedded or postgres, not {name!r}")


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def unreachable_services(backend: Backend) -> list[str]:
    if not backend.is_postgres:
        return []
    missing = []
    if not _reachable("127.0.0.1", 5432):
        missing.append("PostgreSQL at 127.0.0.1:5432")
    if not _reachable("127.0.0.1", 6379):
        missing.append("Redis at 127.0.0.1:6379")
    return missing


async def reset_postgres(url: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(url.replace("postgres://", "postgresql://", 1))
    try:
        await connection.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
    finally:
        await connection.close()


def reset_postgres_sync(url: str) -> None:
    asyncio.run(reset_postgres(url))


async def _recreate_database(url: str, name: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(url.replace("postgres://", "postgresql://", 1))
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()


def fresh_postgres_database(url: str, name: str) -> str:
    """A new empty database beside `url`'s, for processes that must not share the suite's."""
    asyncio.run(_recreate_database(url, name))
    return url.rsplit("/", 1)[0] + "/" + name
