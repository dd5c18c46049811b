"""Every shell command shown in README.md and docs/**/*.md is real and is run somewhere.

Two checks per command. It parses: a `polaris` or `polaris-sim` command resolves to a real
subcommand whose options click accepts (nothing runs), a `make` target exists, a
`docker compose` command names real services and a real `polaris` command inside them, the
benchmark's options pass its argument parser, files named exist, exported variables are real
settings. And it is exercised: `EXERCISED` maps each kind of command to the tests or CI steps
that actually run it, and those must exist. A command that nothing runs fails here; cheap,
safe ones (`--help`, listings) are run by this file itself.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import typer
import typer.main
from typer.core import TyperGroup, TyperOption
from typer.testing import CliRunner

from app.cli import cli as polaris_cli
from loadtests import bench, uniform_answers
from simulator.__main__ import cli as simulator_cli
from tests.compose import compose, polaris_services, setting_names
from tests.docs_commands import Command, commands_on, documented_commands
from tests.harness import REPO_ROOT

THIS = "tests/unit/test_docs_commands.py"
CLIS = {"polaris": polaris_cli, "polaris-sim": simulator_cli}
# Variables a documented command may set besides the settings and the simulator's options.
SHELL_VARIABLES = {"PATH", "PYTHONPATH", "CI", "NO_MKDOCS_2_WARNING"}
COMPOSE_FLAGS = {
    "up": {"-d", "--detach", "--build", "--wait", "--no-deps", "--remove-orphans"},
    "run": {"--rm", "-T", "-d", "--no-deps"},
    "exec": {"-T"},
}
# Compose commands that take only service names.
COMPOSE_ON_SERVICES = {"stop", "start", "restart", "down", "logs", "ps", "pull", "build", "config"}


@dataclass(frozen=True)
class RunBy:
    """A test function that runs the command (or exactly what it runs)."""

    path: str
    name: str


@dataclass(frozen=True)
class Step:
    """A line of a CI script, Makefile or script that runs the command: the file has `text`."""

    path: str
    text: str


@dataclass(frozen=True)
class Static:
    """Nothing to run: the parse check is the whole of it (a file copied, a variable set)."""

    why: str


Evidence = RunBy | Step | Static

FIRST_RUN = RunBy("tests/e2e/test_first_run.py", "test_first_run_prints_working_credentials_once")
ROTATE_KEY = RunBy(
    "tests/e2e/test_cli.py", "test_rotate_signing_key_publishes_both_keys_to_new_servers"
)
COMPOSE_TOPOLOGY = RunBy(
    "tests/e2e/test_compose_topology.py",
    "test_a_device_pairs_through_one_app_while_the_admin_uses_the_other",
)
BACKUP_RESTORE = RunBy(
    "tests/e2e/test_backup_restore.py", "test_a_restored_dump_brings_back_what_was_paired_before_it"
)
CHEAP = RunBy(THIS, "test_cheap_commands_run_as_shown")
LOCUST_RUN = RunBy("tests/e2e/test_load_tools.py", "test_locust_plays_the_seeded_fleet_headless")

# What runs each kind of documented command (see `invocation`). No Docker engine runs here:
# the compose commands map to the tests that validate the file with docker-compose and run
# the same commands, with the same environment, as local processes.
EXERCISED: dict[str, tuple[Evidence, ...]] = {
    "make run": (Step("Makefile", "@scripts/run"), Step("scripts/run", "polaris serve"), FIRST_RUN),
    "make test": (Step(".ci/run", "make test"),),
    "make demo": (
        Step("Makefile", "polaris demo"),
        RunBy("tests/e2e/test_demo.py", "test_the_demo_fleet_is_paired_and_online"),
    ),
    "polaris serve": (FIRST_RUN,),
    "polaris migrate": (
        RunBy("tests/e2e/test_cli.py", "test_migrate_reports_progress_and_is_idempotent"),
    ),
    "polaris create-admin": (
        RunBy("tests/e2e/test_cli.py", "test_create_admin_prompts_for_the_password_without_echo"),
    ),
    "polaris create-user": (
        RunBy("tests/e2e/test_cli.py", "test_create_user_with_roles_and_clear_failures"),
    ),
    "polaris worker": (
        RunBy(
            "tests/e2e/test_replicas.py",
            "test_worker_reports_a_silent_device_offline_and_expires_codes",
        ),
    ),
    "polaris rotate-signing-key": (ROTATE_KEY,),
    "polaris seed-devices": (
        RunBy(
            "tests/integration/test_seeding.py",
            "test_the_command_files_credentials_the_simulator_loads",
        ),
    ),
    "polaris brute-force-odds": (
        RunBy(
            "tests/integration/test_brute_force.py",
            "test_brute_force_odds_prints_the_defaults_odds",
        ),
    ),
    "docker compose up": (
        RunBy(
            "tests/e2e/test_compose_topology.py",
            "test_docker_compose_accepts_the_file_with_its_secrets",
        ),
        COMPOSE_TOPOLOGY,
    ),
    "docker compose run app create-admin": (COMPOSE_TOPOLOGY,),
    "docker compose run app rotate-signing-key": (ROTATE_KEY,),
    "docker compose stop": (BACKUP_RESTORE,),
    "docker compose exec postgres pg_dump": (BACKUP_RESTORE,),
    "docker compose exec postgres pg_restore": (BACKUP_RESTORE,),
    "promtool check rules": (
        RunBy("tests/unit/test_alert_rules.py", "test_promtool_accepts_the_rules"),
    ),
    "promtool test rules": (
        RunBy(
            "tests/unit/test_alert_rules.py", "test_each_alert_fires_on_its_failure_and_not_before"
        ),
    ),
    "polaris-sim --help": (
        CHEAP,
        RunBy("tests/e2e/test_simulator_cli.py", "test_help_names_the_server_and_admin_options"),
    ),
    "polaris-sim profiles": (CHEAP,),
    "polaris-sim pair": (
        RunBy(
            "tests/e2e/test_simulator_cli.py",
            "test_pair_prints_only_the_device_id_and_keeps_credentials_private",
        ),
    ),
    "polaris-sim fleet": (
        RunBy("tests/e2e/test_simulator_cli.py", "test_fleet_pairs_heartbeats_stops_and_resumes"),
        LOCUST_RUN,
    ),
    "polaris-sim scenario": (
        CHEAP,
        RunBy("tests/e2e/test_simulator_cli.py", "test_named_scenarios_pass_through_the_cli"),
    ),
    "locust": (LOCUST_RUN,),
    "python -m loadtests.bench": (
        RunBy("tests/e2e/test_load_tools.py", "test_bench_reports_heartbeats_against_the_echo"),
    ),
    "python -m loadtests.uniform_answers": (
        RunBy(
            "tests/e2e/test_uniform_answers.py",
            "test_every_refusal_gets_its_own_answer_every_time",
        ),
    ),
    "cp": (Static("copies a file of the repository, which must exist"),),
    "export": (Static("sets variables, each a real setting or simulator option"),),
}


def _group(name: str) -> TyperGroup:
    group = typer.main.get_command(CLIS[name])
    assert isinstance(group, TyperGroup)
    return group


def _subcommand(name: str, args: tuple[str, ...]) -> tuple[int, str] | None:
    """Where the subcommand is in `args` (after the group's own options), and its name."""
    commands = _group(name).commands
    return next(((i, arg) for i, arg in enumerate(args) if arg in commands), None)


def _compose_key(args: tuple[str, ...]) -> str:
    if not args:
        return "docker compose"
    sub, rest = args[0], args[1:]
    service_at = next((i for i, arg in enumerate(rest) if not arg.startswith("-")), None)
    if sub not in ("run", "exec") or service_at is None:
        return f"docker compose {sub}"
    service, inner = rest[service_at], rest[service_at + 1 :]
    if sub == "run" and service in polaris_services():
        found = _subcommand("polaris", inner)
        return f"docker compose run {service}" + (f" {found[1]}" if found else "")
    return f"docker compose {sub} {service}" + (f" {inner[0]}" if inner else "")


def invocation(command: Command) -> str:
    """The kind of command, as `EXERCISED` names it: program and subcommand."""
    if command.program in CLIS:
        found = _subcommand(command.program, command.args)
        if found is None:
            return f"{command.program} --help" if "--help" in command.args else command.program
        return f"{command.program} {found[1]}"
    if command.program == "make":
        return f"make {command.args[0]}" if command.args else "make"
    if command.program == "docker compose":
        return _compose_key(command.args)
    if command.program == "promtool":
        return " ".join(("promtool", *command.args[:2]))
    return command.program


def click_errors(name: str, args: tuple[str, ...]) -> list[str]:
    """Resolve the subcommand and let click parse every option, without running anything.

    Options that prompt (a password) are neither prompted for nor required: the command
    asks for them when it runs.
    """
    group = _group(name)
    found = _subcommand(name, args)
    if found is None:
        return [] if "--help" in args else [f"no {name} subcommand in {list(args)}"]
    index, sub_name = found
    try:
        parent = group.make_context(name, list(args[:index])) if index else typer.Context(group)
        sub = group.commands[sub_name]
        for param in sub.params:
            if isinstance(param, TyperOption) and param.prompt:
                param.prompt, param.required = None, False
        sub.make_context(sub_name, list(args[index + 1 :]), parent=parent)
    except typer.TyperException as exc:
        return [exc.format_message()]
    return []


def _known_variables() -> set[str]:
    simulator_options = {
        str(var)
        for param in _group("polaris-sim").params
        for var in ([param.envvar] if isinstance(param.envvar, str) else param.envvar or [])
    }
    return setting_names() | simulator_options | SHELL_VARIABLES


def _variable_errors(command: Command) -> list[str]:
    names = [name for name, _ in command.env]
    if command.program == "export":
        names += [arg.partition("=")[0] for arg in command.args]
    return [
        f"{name} is neither a setting nor a simulator option"
        for name in names
        if name not in _known_variables()
    ]


def _compose_errors(args: tuple[str, ...]) -> list[str]:
    services = set(compose()["services"])
    if not args:
        return ["docker compose without a command"]
    sub, rest = args[0], list(args[1:])
    # `run` and `exec` end their own options at the service: what follows is its command.
    service_at = next((i for i, arg in enumerate(rest) if not arg.startswith("-")), len(rest))
    own = rest[: service_at + 1] if sub in ("run", "exec") else rest
    flags = {arg for arg in own if arg.startswith("-") and arg != "--scale"}
    if sub in COMPOSE_FLAGS and not flags <= COMPOSE_FLAGS[sub]:
        return [f"docker compose {sub}: unknown flags {sorted(flags - COMPOSE_FLAGS[sub])}"]
    if sub == "up":
        scaled = [rest[i + 1].partition("=")[0] for i, arg in enumerate(rest) if arg == "--scale"]
        named = [arg for arg in rest if not arg.startswith("-") and "=" not in arg]
        return [f"no service {s!r}" for s in [*scaled, *named] if s not in services]
    if sub in ("run", "exec"):
        if service_at == len(rest) or rest[service_at] not in services:
            return [f"docker compose {sub}: no service in {rest}"]
        inner = tuple(rest[service_at + 1 :])
        runs_polaris = rest[service_at] in polaris_services() and sub == "run"
        return click_errors("polaris", inner) if runs_polaris else []
    positional = [arg for arg in rest if not arg.startswith("-")]
    if sub in COMPOSE_ON_SERVICES:
        return [f"no service {s!r}" for s in positional if s not in services]
    return [f"docker compose {sub}: not a command the docs should need"]


def _makefile_targets() -> set[str]:
    text = (REPO_ROOT / "Makefile").read_text()
    return set(re.findall(r"^([A-Za-z0-9_.-]+):", text, flags=re.MULTILINE))


def _argparse_errors(command: Command, parse: Callable[[list[str]], object]) -> list[str]:
    try:
        parse(list(command.args))
    except SystemExit as exit_:
        return [f"{command.program} refuses {list(command.args)} (exit {exit_.code})"]
    return []


def _files_exist(paths: list[str]) -> list[str]:
    return [f"no file {path}" for path in paths if not (REPO_ROOT / path).is_file()]


def _option_value(args: tuple[str, ...], option: str) -> list[str]:
    return [args[i + 1] for i, arg in enumerate(args[:-1]) if arg == option]


PARSERS: dict[str, Callable[[Command], list[str]]] = {
    "polaris": lambda c: click_errors("polaris", c.args),
    "polaris-sim": lambda c: click_errors("polaris-sim", c.args),
    "make": lambda c: [f"no make target {t!r}" for t in c.args if t not in _makefile_targets()],
    "docker compose": lambda c: _compose_errors(c.args),
    "python -m loadtests.bench": lambda c: _argparse_errors(c, bench.parse_args),
    "python -m loadtests.uniform_answers": lambda c: _argparse_errors(
        c, uniform_answers.parse_args
    ),
    "locust": lambda c: _files_exist(_option_value(c.args, "-f")) if "-f" in c.args else ["no -f"],
    "promtool": lambda c: _files_exist(list(c.args[2:])),
    "cp": lambda c: _files_exist(list(c.args[:1])),
    "export": lambda _: [],
}


def parse_errors(command: Command) -> list[str]:
    parser = PARSERS.get(command.program)
    if parser is None:
        return [f"nothing here knows how to check {command.program!r}: add it to PARSERS"]
    return [*parser(command), *_variable_errors(command)]


COMMANDS = documented_commands()


def test_the_docs_show_commands_on_several_pages() -> None:
    pages = {command.where.split(":")[0] for command in COMMANDS}
    assert {"README.md", "docs/index.md", "docs/simulator.md"} <= pages
    assert len(COMMANDS) > 30


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c.where)
def test_documented_command_parses_against_the_real_program(command: Command) -> None:
    assert parse_errors(command) == [], str(command)


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c.where)
def test_documented_command_is_run_by_a_test_or_ci(command: Command) -> None:
    assert invocation(command) in EXERCISED, (
        f"{command}\nNothing runs `{invocation(command)}`: add a test (or a CI step) that "
        f"does, and a row to EXERCISED in {THIS}."
    )


@pytest.mark.parametrize(
    "line",
    [
        "polaris serve --prot 8000",
        "polaris rotate-signing-key --grace-minutes 5",
        "polaris create-user --email ops@example.com --role root",
        "polaris-sim fleet --devices many",
        "polaris-sim --base-url http://127.0.0.1:8000 scenarios",
        "make deploy",
        "docker compose up -d --scale web=3",
        "docker compose run --rm app create-admn --email you@example.com",
        "python -m loadtests.bench --rounds 0",
        "python -m loadtests.uniform_answers --requests 0",
        "export POLARIS_SIM_ADMIN_MAIL=admin@example.com",
        "cp .env.sample .env",
        "wget https://polaris.example.com/install.sh",
    ],
)
def test_a_command_that_would_fail_is_caught(line: str) -> None:
    (command,) = commands_on(line, "example")
    assert parse_errors(command) != [] or invocation(command) not in EXERCISED


def test_every_row_of_the_table_is_still_documented() -> None:
    assert set(EXERCISED) <= {invocation(command) for command in COMMANDS}


def _defines(path: str, name: str) -> bool:
    if not (REPO_ROOT / path).is_file():
        return False
    tree = ast.parse((REPO_ROOT / path).read_text())
    return any(
        isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == name
        for node in tree.body
    )


@pytest.mark.parametrize(
    "evidence",
    sorted({e for row in EXERCISED.values() for e in row}, key=str),
    ids=str,
)
def test_what_the_table_names_exists(evidence: Evidence) -> None:
    match evidence:
        case RunBy(path, name):
            assert _defines(path, name), f"no test {name} in {path}"
        case Step(path, text):
            assert text in (REPO_ROOT / path).read_text(), f"{path} does not run {text!r}"
        case Static():
            pass


def test_only_shell_builtins_are_checked_without_running() -> None:
    static = {key for key, row in EXERCISED.items() if any(isinstance(e, Static) for e in row)}
    assert static == {"cp", "export"}


def _cheap(command: Command) -> bool:
    """Read-only and quick: help, and listings that need no server."""
    if command.program not in CLIS:
        return False
    key = invocation(command)
    listing = key == "polaris-sim scenario" and command.args[-1:] == ("scenario",)
    return "--help" in command.args or key == "polaris-sim profiles" or listing


def test_cheap_commands_run_as_shown() -> None:
    cheap = [command for command in COMMANDS if _cheap(command)]
    assert cheap, "the docs show no --help or listing command any more"
    for command in cheap:
        result = CliRunner().invoke(
            CLIS[command.program], list(command.args), prog_name=command.program
        )
        assert result.exit_code == 0, f"{command}\n{result.output}"
        assert result.output.strip(), str(command)
