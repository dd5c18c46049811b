from tortoise import migrations
from tortoise.migrations import operations as ops
from uuid import uuid4
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0005_state_enums')]

    initial = False

    operations = [
        ops.CreateModel(
            name='IdempotentAnswer',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('key_hash', fields.CharField(unique=True, max_length=64)),
                ('request_hash', fields.CharField(max_length=64)),
                ('status', fields.IntField(null=True)),
                ('media_type', fields.CharField(null=True, max_length=64)),
                ('sealed_body', fields.TextField(null=True, unique=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('expires_at', fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'idempotent_answers', 'app': 'models', 'pk_attr': 'id'},
            bases=['Model'],
        ),
    ]
