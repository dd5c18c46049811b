from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0007_webhooks_attempts_clones')]

    initial = False

    operations = [
        ops.AlterField(
            model_name='Device',
            name='clone_suspected_at',
            field=fields.DatetimeField(null=True, db_index=True, auto_now=False, auto_now_add=False),
        ),
        ops.AlterField(
            model_name='Device',
            name='last_seen_at',
            field=fields.DatetimeField(null=True, db_index=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddIndex(
            model_name='DeviceToken',
            index=Index(fields=['state', 'expires_at']),
        ),
        ops.AddIndex(
            model_name='PairingAttempt',
            index=Index(fields=['session_id', 'at']),
        ),
    ]
