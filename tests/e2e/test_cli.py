from __future__ import annotations

from pathlib import Path

import httpx

from tests.harness import ServerProcess, base_env, run_cli


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


def test_rotate_signing_key_publishes_both_keys_to_new_servers(workdir: Path) -> None:
    first = ServerProcess(workdir, base_env(workdir)).start()
    try:
        old = httpx.get(f"{first.url}/.well-known/jwks.json").json()["keys"]
    finally:
        first.stop()
    assert len(old) == 1

    rotated = run_cli(["rotate-signing-key", "--grace-minutes", "30"], first.env)
    assert rotated.returncode == 0, rotated.stderr
    assert "previous key stays published for 30 min" in rotated.stdout

    second = ServerProcess(workdir, first.env).start()
    try:
        keys = httpx.get(f"{second.url}/.well-known/jwks.json").json()["keys"]
    finally:
        second.stop()
    assert {k["kid"] for k in keys} > {old[0]["kid"]}
    assert all(k["alg"] == "Ed25519" and "d" not in k for k in keys)


def test_worker_refuses_to_start_without_redis(workdir: Path) -> None:
    result = run_cli(["worker"], base_env(workdir))
    assert result.returncode == 2
    assert "needs REDIS_URL" in result.stderr


def test_serve_refuses_several_workers_in_embedded_mode(workdir: Path) -> None:
    result = run_cli(["serve", "--workers", "2"], base_env(workdir))
    assert result.returncode == 2
    assert "needs REDIS_URL" in result.stderr
