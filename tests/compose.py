"""docker-compose.yml read as the tests need it: each Polaris service's command and
environment, and the `polaris` command line and settings they must name."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import typer.main
import yaml
from typer.core import TyperGroup

from app.cli import cli
from app.settings import Settings
from tests.harness import REPO_ROOT

COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
POLARIS_IMAGE = "polaris:latest"
_REFERENCE = re.compile(r"\$\{(\w+)(?::?[?-][^}]*)?\}")


@dataclass(frozen=True)
class PolarisService:
    name: str
    command: list[str]
    environment: dict[str, str]
    raw: dict[str, Any]

    def resolved_environment(self, values: dict[str, str]) -> dict[str, str]:
        """The environment with each `${NAME…}` replaced from `values`."""
        return {
            key: _REFERENCE.sub(lambda m: values[m.group(1)], value)
            for key, value in self.environment.items()
        }


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return loaded


def polaris_services() -> dict[str, PolarisService]:
    """The services that run the Polaris image (merge keys already applied by PyYAML)."""
    return {
        name: PolarisService(
            name, [str(part) for part in spec["command"]], dict(spec["environment"]), spec
        )
        for name, spec in compose()["services"].items()
        if spec.get("image") == POLARIS_IMAGE
    }


def cli_options() -> dict[str, set[str]]:
    """Every `polaris` subcommand and the options it takes."""
    group = typer.main.get_command(cli)
    assert isinstance(group, TyperGroup)
    return {
        name: {opt for param in command.params for opt in param.opts}
        for name, command in group.commands.items()
    }


def setting_names() -> set[str]:
    """The environment variables `app.settings` reads."""
    return {
        field.validation_alias if isinstance(field.validation_alias, str) else name.upper()
        for name, field in Settings.model_fields.items()
    }
