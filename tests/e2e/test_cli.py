from __future__ import annotations

from pathlib import Path

from tests.harness import base_env, run_cli


def test_migrate_reports_progress_and_is_idempotent(workdir: Path) -> None:
    env = base_env(workdir)
    first = run_cli(["migrate"], env)
    assert first.returncode == 0, first.stderr
    assert "applying models.0001_initial" in first.stdout
    second = run_cli(["migrate"], env)
    assert second.returncode == 0
    assert "applying" not in second.stdout
    assert "up to date" in second.stdout


def test_create_user_with_roles_and_clear_failures(workdir: Path) -> None:
    env = base_env(workdir)
    assert run_cli(["migrate"], env).returncode == 0
    created = run_cli(
        [
            "create-user",
            "--email",
            "Ops@Example.com",
            "--role",
            "operator",
            "--password",
            "long-enough-password",
        ],
        env,
    )
    assert created.returncode == 0, created.stderr
    assert "Created operator ops@example.com" in created.stdout

    duplicate = run_cli(
        [
            "create-user",
            "--email",
            "ops@example.com",
            "--role",
            "admin",
            "--password",
            "long-enough-password",
        ],
        env,
    )
    assert duplicate.returncode == 1
    assert "already exists" in duplicate.stderr

    weak = run_cli(["create-admin", "--email", "a@example.com", "--password", "short"], env)
    assert weak.returncode == 1
    assert "at least 12 characters" in weak.stderr

    bad_role = run_cli(
        ["create-user", "--email", "x@example.com", "--role", "root", "--password", "x" * 12], env
    )
    assert bad_role.returncode == 2


def test_create_admin_prompts_for_the_password_without_echo(workdir: Path) -> None:
    env = base_env(workdir)
    assert run_cli(["migrate"], env).returncode == 0
    secret = "typed-at-the-prompt-123"
    result = run_cli(
        ["create-admin", "--email", "root@example.com"], env, input_text=f"{secret}\n{secret}\n"
    )
    assert result.returncode == 0, result.stderr
    assert "Created admin root@example.com" in result.stdout
    assert secret not in result.stdout
