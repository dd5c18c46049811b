"""Indexes for the Devices page at 100,000 devices.

- the active credentials of one page of devices (`device_tokens.device_id`: it had no index,
  so every page read the whole credentials table);
- on PostgreSQL, trigram indexes for the label/model substring search, on the very expression
  Tortoise writes for `icontains` (`UPPER(CAST(col AS VARCHAR)) LIKE UPPER(…)`). They need
  the `pg_trgm` extension: created when the server offers it and the role may create it;
  without it the search still works, reading the table.

Raw SQL, so the models' migration state is untouched: the trigram indexes have no portable
spelling, and the other one is about how the console reads, not about the models. (The
list's keyset order needs none: `registered_at`'s own index seeks to a cursor.)
"""

from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.migrations.schema_editor.base import BaseSchemaEditor

PORTABLE = (("idx_device_tokens_device_id", "device_tokens", "(device_id)"),)
TRIGRAM = (
    ("idx_devices_label_trgm", "devices", "USING gin ((UPPER(CAST(label AS VARCHAR))) gin_trgm_ops)"),
    ("idx_devices_model_trgm", "devices", "USING gin ((UPPER(CAST(model AS VARCHAR))) gin_trgm_ops)"),
)


async def _has_trigrams(editor: BaseSchemaEditor) -> bool:
    client = editor.client
    _, installed = await client.execute_query("SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'")
    if installed:
        return True
    _, offered = await client.execute_query(
        "SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm'"
    )
    if not offered:
        return False
    # A role that may not create it (not trusted, not the owner) must not fail the migration.
    await client.execute_script("SAVEPOINT polaris_trgm")
    try:
        await client.execute_script("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    except Exception:
        await client.execute_script("ROLLBACK TO SAVEPOINT polaris_trgm")
        return False
    await client.execute_script("RELEASE SAVEPOINT polaris_trgm")
    return True


async def create_indexes(apps: object, editor: BaseSchemaEditor) -> None:
    indexes = list(PORTABLE)
    if editor.DIALECT == "postgres" and await _has_trigrams(editor):
        indexes.extend(TRIGRAM)
    for name, table, definition in indexes:
        await editor._run_sql(f'CREATE INDEX IF NOT EXISTS "{name}" ON "{table}" {definition}')


async def drop_indexes(apps: object, editor: BaseSchemaEditor) -> None:
    for name, _, _ in (*PORTABLE, *TRIGRAM):
        await editor._run_sql(f'DROP INDEX IF EXISTS "{name}"')


class Migration(migrations.Migration):
    dependencies = [('models', '0008_fleet_indexes')]

    initial = False

    operations = [
        ops.RunPython(create_indexes, drop_indexes),
    ]
