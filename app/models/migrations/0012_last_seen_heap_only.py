"""`devices.last_seen_at` without an index, so its writes are heap-only on PostgreSQL.

The last-seen flush rewrites the row of every device heard since the last flush (at
100,000 devices heartbeating every 30 s, 3,300 rows a second), and the sweep flips
`reported_online` on each device that comes or goes. While any index covered a column an
UPDATE changed, each of those writes added an entry to every one of the table's ten indexes,
the two trigram ones included, and left the old entries behind for a vacuum to clear. With
no index on the column, PostgreSQL writes the new row version on the same page and touches
no index at all (a heap-only tuple), and reclaims the old version itself when it next reads
the page, vacuum or not. Pages keep three tenths free (`fillfactor`), so that once a
page's rows have each been rewritten a time or two, every new version fits beside its
old one: measured, the share of heap-only rewrites over four rounds was 12, 28, 49 and 54 %
at a fillfactor of 90, and 44, 62, 81 and 99 % at 70.

What read through the index reads the table instead, each a few milliseconds at 100,000
devices: the sweep's boundary pass (every few seconds), its reconcile (every minute), and
the console's online filter when few devices are heard.

On SQLite, changing a column rebuilds the table, and the rebuild (here and in 0005 and 0008)
left `devices` with none of the indexes its model declares: they are made again here, under
the names PostgreSQL has for them.
"""

from tortoise import fields, migrations
from tortoise.migrations import operations as ops
from tortoise.migrations.schema_editor.base import BaseSchemaEditor

FILLFACTOR = 70

# The model's own single-column indexes, named as on PostgreSQL (where they never went away).
DEVICE_INDEXES = (
    ("idx_devices_kind_5d0325", "kind"),
    ("idx_devices_state_480985", "state"),
    ("idx_devices_platfor_fc4d6f", "platform"),
    ("idx_devices_registe_e011c3", "registered_at"),
    ("idx_devices_deleted_da3806", "deleted_at"),
    ("idx_devices_clone_s_59d477", "clone_suspected_at"),
)


async def leave_room(apps: object, editor: BaseSchemaEditor) -> None:
    # New pages only: the pages that exist fill up once, and then keep the room pruning makes.
    if editor.DIALECT == "postgres":
        await editor._run_sql(f'ALTER TABLE "devices" SET (fillfactor = {FILLFACTOR})')
    else:
        for name, column in DEVICE_INDEXES:
            await editor._run_sql(f'CREATE INDEX IF NOT EXISTS "{name}" ON "devices" ({column})')


async def fill_pages(apps: object, editor: BaseSchemaEditor) -> None:
    if editor.DIALECT == "postgres":
        await editor._run_sql('ALTER TABLE "devices" RESET (fillfactor)')


class Migration(migrations.Migration):
    dependencies = [("models", "0011_tokens_by_end")]

    initial = False

    operations = [
        ops.AlterField(
            model_name="Device",
            name="last_seen_at",
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.RunPython(leave_room, fill_pages),
    ]
