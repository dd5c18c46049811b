"""docker-compose.yml names only real commands, options and settings, and keeps running."""

from __future__ import annotations

import pytest

from tests.compose import cli_options, compose, polaris_services, setting_names
from tests.harness import REPO_ROOT

SERVICES = polaris_services()


def test_the_topology_has_every_part_of_a_deployment() -> None:
    assert set(compose()["services"]) == {"postgres", "redis", "migrate", "app", "worker"}
    assert set(SERVICES) == {"migrate", "app", "worker"}


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_each_polaris_service_runs_a_real_subcommand_with_real_options(name: str) -> None:
    subcommand, *arguments = SERVICES[name].command
    known = cli_options()
    assert subcommand in known, f"`polaris {subcommand}` does not exist"
    options = {arg for arg in arguments if arg.startswith("--")}
    assert options <= known[subcommand], options - known[subcommand]


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_each_polaris_service_sets_only_real_settings(name: str) -> None:
    unknown = set(SERVICES[name].environment) - setting_names()
    assert not unknown, f"{name} sets variables no setting reads: {sorted(unknown)}"


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_secrets_come_from_the_environment_never_from_the_file(name: str) -> None:
    environment = SERVICES[name].environment
    assert environment["SECRET_KEY"].startswith("${SECRET_KEY:?")
    assert environment["METRICS_TOKEN"].startswith("${METRICS_TOKEN:?")
    assert "${POSTGRES_PASSWORD:?" in environment["DATABASE_URL"]


def test_the_app_waits_for_the_migration_and_is_checked_for_readiness() -> None:
    app = SERVICES["app"].raw
    assert app["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert "/readyz" in " ".join(app["healthcheck"]["test"])
    assert SERVICES["migrate"].command == ["migrate"]


def _one_shot_services() -> set[str]:
    """Services others wait on to *finish* (`service_completed_successfully`)."""
    return {
        dependency
        for spec in compose()["services"].values()
        for dependency, condition in (spec.get("depends_on") or {}).items()
        if condition.get("condition") == "service_completed_successfully"
    }


def test_only_the_migration_runs_once() -> None:
    assert _one_shot_services() == {"migrate"}
    # Restarted, a finished migration would run again and again.
    assert compose()["services"]["migrate"]["restart"] == "no"


@pytest.mark.parametrize("name", sorted(set(compose()["services"]) - _one_shot_services()))
def test_every_long_running_service_restarts(name: str) -> None:
    # A worker or app that exits (a crash, a lost backend at start) comes back by itself;
    # `docker compose stop` still stops it.
    assert compose()["services"][name].get("restart") == "unless-stopped"


def test_postgres_and_redis_keep_their_data_in_named_volumes() -> None:
    services = compose()["services"]
    assert set(compose()["volumes"]) == {"postgres-data", "redis-data"}
    assert "postgres-data:/var/lib/postgresql/data" in services["postgres"]["volumes"]
    assert "--appendonly" in services["redis"]["command"]


DOCKERFILE = (REPO_ROOT / "Dockerfile").read_text()


def _instructions(name: str) -> list[str]:
    return [line for line in DOCKERFILE.splitlines() if line.startswith(name + " ")]


def test_the_image_is_built_in_stages_from_the_pinned_dependencies() -> None:
    stages = _instructions("FROM")
    assert len(stages) == 2
    assert all("-slim" in stage for stage in stages)
    assert "-c constraints.txt" in DOCKERFILE


def test_the_image_runs_polaris_as_a_non_root_user() -> None:
    (user,) = _instructions("USER")
    assert user.split()[1] not in ("root", "0")
    assert _instructions("ENTRYPOINT") == ['ENTRYPOINT ["polaris"]']
    assert _instructions("EXPOSE") == ["EXPOSE 8000"]
    assert "/healthz" in DOCKERFILE.split("HEALTHCHECK", 1)[1]


def test_no_secret_and_no_local_state_goes_into_the_build_context() -> None:
    ignored = (REPO_ROOT / ".dockerignore").read_text().split()
    assert {".env", ".venv", ".polaris", "*.db", ".git"} <= set(ignored)
    assert "SECRET_KEY" not in DOCKERFILE
