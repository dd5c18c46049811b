"""The migrated schema has the indexes the models declare, and presence writes touch none.

Read from the database's own catalogue after every migration has run, on each backend: a
migration that rebuilds a table (SQLite does, to change a column) must not lose its indexes.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from tortoise import Tortoise
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from app import clock
from app.services import presence_rows
from tests.factories import make_user, saved_scanners

pytestmark = pytest.mark.usefixtures("orm")

FLEET = 200
FLUSHES = 5


async def _indexed_columns(connection: BaseDBAsyncClient, table: str) -> set[str]:
    """The columns of `table` that lead an index of it."""
    if connection.capabilities.dialect == "postgres":
        _, rows = await connection.execute_query(
            "SELECT a.attname AS name FROM pg_index i"
            " JOIN pg_class t ON t.oid = i.indrelid"
            " JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = i.indkey[0]"
            " WHERE t.relname = $1",
            [table],
        )
        return {row["name"] for row in rows}
    _, indexes = await connection.execute_query(f'PRAGMA index_list("{table}")')
    leading: set[str] = set()
    for index in indexes:
        _, columns = await connection.execute_query(f'PRAGMA index_info("{index["name"]}")')
        leading.update(column["name"] for column in columns if column["seqno"] == 0)
    return leading


async def test_every_index_a_model_declares_is_in_the_database() -> None:
    connection = Tortoise.get_connection("default")
    missing = []
    for model in Tortoise.apps["models"].values():
        table = model._meta.db_table
        indexed = await _indexed_columns(connection, table)
        for name, field in model._meta.fields_map.items():
            column = field.source_field or name
            if (field.index or field.unique) and column not in indexed:
                missing.append(f"{table}.{column}")
    assert not missing


async def test_last_seen_at_has_no_index() -> None:
    connection = Tortoise.get_connection("default")

    assert "last_seen_at" not in await _indexed_columns(connection, "devices")


@pytest.mark.postgres
async def test_last_seen_rewrites_become_heap_only() -> None:
    """Once the flush has rewritten a fleet's rows a few times, each new version goes on its
    old one's page with no new entry in any index (PostgreSQL's own count; with an index on
    `last_seen_at`, none would)."""
    owner = await make_user()
    now = clock.now()
    ids = await saved_scanners(owner.id, FLEET)
    heap_only: list[int] = []
    for beat in range(FLUSHES):
        async with in_transaction() as connection:
            at = now + timedelta(seconds=30 * beat)
            written = await presence_rows.move_last_seen(
                [(device_id, at) for device_id in ids], connection=connection
            )
            # This backend's counts not yet reported: every flush of this test so far.
            _, [row] = await connection.execute_query(
                "SELECT n_tup_hot_upd FROM pg_stat_xact_user_tables WHERE relname = 'devices'"
            )
        assert written == FLEET
        heap_only.append(row["n_tup_hot_upd"] - sum(heap_only))

    assert heap_only[-1] >= 0.95 * FLEET, heap_only
