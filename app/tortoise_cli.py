"""Config for Tortoise's own CLI: `tortoise -c app.tortoise_cli.TORTOISE_ORM makemigrations`."""

from app.db import tortoise_config
from app.settings import Settings

TORTOISE_ORM = tortoise_config(Settings().database_url)
