from tortoise import migrations
from tortoise.migrations import operations as ops
from app.models.kinds import Kind
from app.models.user import Role
from orjson import loads
from tortoise.fields.base import OnDelete
from tortoise.fields.data import JSON_DUMPS
from uuid import uuid4
from tortoise import fields

class Migration(migrations.Migration):
    initial = True

    operations = [
        ops.CreateModel(
            name='AuditEvent',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('at', fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=False)),
                ('action', fields.CharField(db_index=True, max_length=64)),
                ('actor_type', fields.CharField(max_length=16)),
                ('actor_id', fields.CharField(null=True, max_length=64)),
                ('target_type', fields.CharField(null=True, max_length=32)),
                ('target_id', fields.CharField(null=True, db_index=True, max_length=64)),
                ('metadata', fields.JSONField(default=dict, encoder=JSON_DUMPS, decoder=loads)),
                ('ip', fields.CharField(null=True, max_length=64)),
                ('request_id', fields.CharField(null=True, max_length=64)),
            ],
            options={'table': 'audit_events', 'app': 'models', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='User',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('email', fields.CharField(unique=True, max_length=254)),
                ('password_hash', fields.CharField(max_length=255)),
                ('role', fields.CharEnumField(description='ADMIN: admin\nOPERATOR: operator', enum_type=Role, max_length=16)),
                ('is_active', fields.BooleanField(default=True)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('last_login_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'users', 'app': 'models', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='ConsoleSession',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('token_hash', fields.CharField(unique=True, max_length=64)),
                ('user', fields.ForeignKeyField('models.User', source_field='user_id', db_constraint=True, to_field='id', related_name='console_sessions', on_delete=OnDelete.CASCADE)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('last_seen_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('expires_at', fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=False)),
                ('ended_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('ip', fields.CharField(null=True, max_length=64)),
                ('user_agent', fields.CharField(null=True, max_length=255)),
            ],
            options={'table': 'console_sessions', 'app': 'models', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Device',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('kind', fields.CharEnumField(db_index=True, description='SCANNER: scanner\nADMIN_APP: admin_app', enum_type=Kind, max_length=16)),
                ('state', fields.CharField(default='active', db_index=True, max_length=24)),
                ('label', fields.CharField(max_length=120)),
                ('platform', fields.CharField(db_index=True, max_length=16)),
                ('model', fields.CharField(default='', max_length=64)),
                ('os_version', fields.CharField(default='', max_length=64)),
                ('app_version', fields.CharField(default='', max_length=64)),
                ('apns_environment', fields.CharField(null=True, max_length=16)),
                ('push_token', fields.CharField(null=True, max_length=200)),
                ('capabilities', fields.JSONField(default=list, encoder=JSON_DUMPS, decoder=loads)),
                ('device_identifier', fields.CharField(null=True, max_length=128)),
                ('owner', fields.ForeignKeyField('models.User', source_field='owner_id', db_constraint=True, to_field='id', related_name='devices', on_delete=OnDelete.RESTRICT)),
                ('registered_at', fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=False)),
                ('last_seen_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('last_ip', fields.CharField(null=True, max_length=64)),
                ('deleted_at', fields.DatetimeField(null=True, db_index=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'devices', 'app': 'models', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='DeviceToken',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('device', fields.ForeignKeyField('models.Device', source_field='device_id', db_constraint=True, to_field='id', related_name='tokens', on_delete=OnDelete.CASCADE)),
                ('lookup_id', fields.CharField(unique=True, max_length=32)),
                ('token_hash', fields.CharField(max_length=64)),
                ('secret_hash', fields.CharField(max_length=64)),
                ('state', fields.CharField(default='active', db_index=True, max_length=24)),
                ('issued_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('expires_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('ended_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('replaced_by_id', fields.UUIDField(null=True)),
            ],
            options={'table': 'device_tokens', 'app': 'models', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='PairingSession',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('kind', fields.CharEnumField(description='SCANNER: scanner\nADMIN_APP: admin_app', enum_type=Kind, max_length=16)),
                ('state', fields.CharField(default='minted', db_index=True, max_length=24)),
                ('code_hash', fields.CharField(unique=True, max_length=64)),
                ('proof_challenge', fields.CharField(null=True, max_length=64)),
                ('device_challenge', fields.CharField(null=True, max_length=64)),
                ('created_by', fields.ForeignKeyField('models.User', source_field='created_by_id', db_constraint=True, to_field='id', related_name='pairing_sessions', on_delete=OnDelete.CASCADE)),
                ('console_session', fields.ForeignKeyField('models.ConsoleSession', source_field='console_session_id', null=True, db_constraint=True, to_field='id', related_name='pairing_sessions', on_delete=OnDelete.SET_NULL)),
                ('device', fields.ForeignKeyField('models.Device', source_field='device_id', null=True, db_constraint=True, to_field='id', related_name='pairing_sessions', on_delete=OnDelete.SET_NULL)),
                ('failed_attempts', fields.IntField(default=0)),
                ('pending_device', fields.JSONField(null=True, encoder=JSON_DUMPS, decoder=loads)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('expires_at', fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=False)),
                ('resolved_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'pairing_sessions', 'app': 'models', 'pk_attr': 'id'},
            bases=['Model'],
        ),
    ]
