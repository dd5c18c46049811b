from tortoise import migrations
from tortoise.migrations import operations as ops
from statemachines.states import DeviceState, PairingState, TokenState
from tortoise import fields


class StateOnlyAlterField(ops.AlterField):
    """The `state` columns stay VARCHAR(24) holding the same values; only the fields' Python
    type becomes the machines' enums. Nothing to do in the database, and nothing may be done:
    Tortoise alters a SQLite column by rebuilding its table, and dropping `devices` cascades
    to every device's tokens."""

    async def database_forward(self, *args, **kwargs) -> None:
        return None

    async def database_backward(self, *args, **kwargs) -> None:
        return None


class Migration(migrations.Migration):
    dependencies = [('models', '0004_presence')]

    initial = False

    operations = [
        StateOnlyAlterField(
            model_name='Device',
            name='state',
            field=fields.CharEnumField(default=DeviceState.active, db_index=True, description='active: active\nderegistered: deregistered', enum_type=DeviceState, max_length=24),
        ),
        StateOnlyAlterField(
            model_name='DeviceToken',
            name='state',
            field=fields.CharEnumField(default=TokenState.active, db_index=True, description='active: active\nrotated: rotated\nrevoked: revoked\nexpired: expired', enum_type=TokenState, max_length=24),
        ),
        StateOnlyAlterField(
            model_name='PairingSession',
            name='state',
            field=fields.CharEnumField(default=PairingState.minted, db_index=True, description='minted: minted\npending_approval: pending_approval\nredeemed: redeemed\nrejected: rejected\nexpired: expired\ncancelled: cancelled\nburned: burned', enum_type=PairingState, max_length=24),
        ),
    ]
