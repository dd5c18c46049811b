"""The shell commands the documentation shows: every line of the ```sh, ```bash, ```shell and
```console fences of README.md and docs/**/*.md, split into the program it runs and its
arguments, as a shell would read it."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.harness import REPO_ROOT

SHELL_FENCES = frozenset({"sh", "bash", "shell", "console"})
FENCE = re.compile(r"^\s*```(\S*)")
ASSIGNMENT = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$", re.DOTALL)
# Where one command ends and the next begins on a line.
SEPARATORS = frozenset({"&&", "||", ";", "|"})
# Everything from a redirection on is the shell's business, not the program's.
REDIRECTION = re.compile(r"^\d?[<>]")
# Programs that run the rest of the line, and how many of their own words to skip.
WRAPPERS = {"sudo": 0, "exec": 0, "taskset": 2}
# `python -m <module>` under the name the project installs for it.
MODULE_PROGRAMS = {"simulator": "polaris-sim", "app.cli": "polaris"}
VENV_BIN = ".venv/bin/"


@dataclass(frozen=True)
class Command:
    program: str
    args: tuple[str, ...]
    env: tuple[tuple[str, str], ...]
    where: str
    text: str

    def __str__(self) -> str:
        return f"{self.where}: {self.text}"


def documentation_files() -> list[Path]:
    return [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").rglob("*.md"))]


def shell_lines(text: str) -> Iterator[tuple[int, str]]:
    """(line number, command line) in the shell fences, continuation lines joined."""
    language: str | None = None
    pending: tuple[int, str] | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        fence = FENCE.match(line)
        if fence:
            language = None if language is not None else fence.group(1)
            continue
        if language not in SHELL_FENCES:
            continue
        if language == "console":
            if not line.lstrip().startswith("$ "):
                continue
            line = line.lstrip()[2:]
        start, joined = pending or (number, "")
        joined += line.rstrip()
        if joined.endswith("\\"):
            pending = (start, joined[:-1] + " ")
            continue
        pending = None
        if joined.strip() and not joined.lstrip().startswith("#"):
            yield start, joined.strip()


def _split(line: str) -> Iterator[list[str]]:
    words: list[str] = []
    for word in shlex.split(line, comments=True):
        if word in SEPARATORS:
            yield words
            words = []
        else:
            words.append(word)
    yield words


def _program(words: list[str]) -> tuple[str, list[str]]:
    head, *rest = words
    name = head.removeprefix(VENV_BIN)
    if name in ("python", "python3") and len(rest) >= 2 and rest[0] == "-m":
        return MODULE_PROGRAMS.get(rest[1], f"python -m {rest[1]}"), rest[2:]
    if name == "docker" and rest[:1] == ["compose"]:
        return "docker compose", rest[1:]
    if name == "docker-compose":
        return "docker compose", rest
    return name, rest


def _command(words: list[str], where: str, text: str) -> Command | None:
    env: list[tuple[str, str]] = []
    while words and (assignment := ASSIGNMENT.match(words[0])):
        env.append((assignment.group(1), assignment.group(2)))
        words = words[1:]
    while words and words[0] in WRAPPERS:
        words = words[1 + WRAPPERS[words[0]] :]
    cut = next((i for i, word in enumerate(words) if REDIRECTION.match(word)), len(words))
    words = words[:cut]
    if not words:
        # A line of assignments alone sets shell variables: checked like `export`.
        return (
            Command("export", tuple(f"{k}={v}" for k, v in env), (), where, text) if env else None
        )
    program, args = _program(words)
    return Command(program, tuple(args), tuple(env), where, text)


def commands_on(line: str, where: str) -> list[Command]:
    """The commands of one shell line."""
    found = (_command(words, where, line) for words in _split(line))
    return [command for command in found if command is not None]


def commands_in(path: Path) -> Iterator[Command]:
    relative = path.relative_to(REPO_ROOT).as_posix()
    for number, line in shell_lines(path.read_text()):
        yield from commands_on(line, f"{relative}:{number}")


def documented_commands() -> list[Command]:
    return [command for path in documentation_files() for command in commands_in(path)]


def documented(program: str, page: str | None = None) -> list[Command]:
    """The documented commands that run `program`, optionally only those on one page."""
    return [
        command
        for command in documented_commands()
        if command.program == program and (page is None or command.where.startswith(page + ":"))
    ]


def with_options(args: tuple[str, ...], values: dict[str, str]) -> list[str]:
    """`args` with each option's value replaced (or the option added), e.g. a shorter run."""
    changed = list(args)
    for option, value in values.items():
        if option in changed:
            changed[changed.index(option) + 1] = value
        else:
            changed += [option, value]
    return changed
