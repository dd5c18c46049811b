"""Tortoise configuration and migrations, shared by the app, the worker and the CLI."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import asyncpg
from tortoise import Tortoise
from tortoise.exceptions import DBConnectionError
from tortoise.migrations.api import migrate as run_migrations

MODELS_MODULE = "app.models"
MIGRATIONS_MODULE = "app.models.migrations"

# What a request meets when its database connection was dropped (a restarted or failed-over
# server, `pg_terminate_backend`) or cannot be opened. Tortoise passes these through
# untranslated; the pool replaces the dead connection, so the next request succeeds.
CONNECTION_LOST: tuple[type[Exception], ...] = (
    DBConnectionError,
    asyncpg.PostgresConnectionError,
    # Terminated by an administrator, or the server shutting down or still starting.
    asyncpg.exceptions.OperatorInterventionError,
    # "the underlying connection is closed", and a pooled connection found dead mid-call.
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    ConnectionError,
)


def tortoise_config(database_url: str) -> dict[str, Any]:
    return {
        "connections": {"default": _normalise_url(database_url)},
        "apps": {
            "models": {
                "models": [MODELS_MODULE],
                "migrations": MIGRATIONS_MODULE,
                "default_connection": "default",
            }
        },
        "use_tz": True,
        "timezone": "UTC",
    }


def _normalise_url(url: str) -> str:
    # Tortoise names the scheme `postgres`; operators often write `postgresql`.
    if url.startswith("postgresql://"):
        return "postgres://" + url.removeprefix("postgresql://")
    return url


async def migrate(
    database_url: str, *, progress: Callable[[str, str, str], object] | None = None
) -> None:
    """Apply every pending migration, then release the connections it opened.

    `progress(event, app_label, name)` hears `apply_start` / `apply_done` per migration.
    """
    try:
        await run_migrations(config=tortoise_config(database_url), progress=progress)
    finally:
        await Tortoise.close_connections()
