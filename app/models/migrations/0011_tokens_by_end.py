"""An index for the credentials that ended recently (`device_tokens.ended_at`).

Every process with Redis reads what ended in the last few seconds from the database, as the
bound on a revocation message lost on its way (`app.presence.redis`): without an index each
read scanned the credentials table. Partial: active credentials, nearly all of them, have no
end and stay out of it.

Raw SQL, as in 0009, so the models' migration state is untouched.
"""

from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.migrations.schema_editor.base import BaseSchemaEditor

NAME = "idx_device_tokens_ended_at"


async def create_index(apps: object, editor: BaseSchemaEditor) -> None:
    await editor._run_sql(
        f'CREATE INDEX IF NOT EXISTS "{NAME}" ON "device_tokens" (ended_at)'
        " WHERE ended_at IS NOT NULL"
    )


async def drop_index(apps: object, editor: BaseSchemaEditor) -> None:
    await editor._run_sql(f'DROP INDEX IF EXISTS "{NAME}"')


class Migration(migrations.Migration):
    dependencies = [("models", "0010_presence_changes_by_device")]

    initial = False

    operations = [
        ops.RunPython(create_index, drop_index),
    ]
