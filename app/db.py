"""Tortoise configuration and migrations, shared by the app, the worker and the CLI."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tortoise import Tortoise
from tortoise.migrations.api import migrate as run_migrations

MODELS_MODULE = "app.models"
MIGRATIONS_MODULE = "app.models.migrations"


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
