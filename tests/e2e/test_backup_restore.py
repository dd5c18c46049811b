"""The operations guide's backup and restore, as written there: `pg_dump -Fc` of the live
database, then `pg_restore --clean --if-exists` with the service stopped. What was paired
before the dump works again afterwards; what was paired after it must pair again."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from simulator.admin import AdminApi, admin_http_client
from simulator.problems import ProblemError
from simulator.protocol import Credentials, DeviceApi, PkcePair, device_http_client
from tests import backends
from tests.harness import ServerProcess, base_env, run_cli
from tests.scanner import DOCK_SCANNER

ADMIN_EMAIL, ADMIN_PASSWORD = "backup-admin@example.com", "backup-admin-password"
SECRET_KEY = "backup-secret-key-kept-beside-the-dump-0123456789"


def _postgres_tool(name: str, *args: str, stdin: bytes = b"") -> bytes:
    executable = shutil.which(name)
    if executable is None:
        pytest.fail(f"{name} is not installed (Debian's postgresql-client)")
    done = subprocess.run(
        [executable, *args], input=stdin, capture_output=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    return done.stdout


async def _pair(url: str) -> Credentials:
    async with admin_http_client(url) as admin_client, device_http_client(url) as device_client:
        admin = AdminApi(admin_client)
        await admin.login(ADMIN_EMAIL, ADMIN_PASSWORD)
        minted = await admin.mint_code()
        return await DeviceApi(device_client).register_scanned(
            minted.pairing_uri, pkce=PkcePair.generate(), fields=DOCK_SCANNER
        )


async def _exchange(url: str, credentials: Credentials) -> str:
    """`ok`, or the problem code the token exchange answered."""
    async with device_http_client(url) as client:
        try:
            await DeviceApi(client).access_token(credentials)
        except ProblemError as refused:
            return refused.code
    return "ok"


@pytest.fixture
def backed_up_database() -> str:
    return backends.fresh_postgres_database(backends.POSTGRES_URL, "polaris_backup")


@pytest.mark.postgres
@pytest.mark.slow
async def test_a_restored_dump_brings_back_what_was_paired_before_it(
    tmp_path: Path, backed_up_database: str
) -> None:
    database_url = backed_up_database
    env = base_env(tmp_path, DATABASE_URL=database_url, SECRET_KEY=SECRET_KEY)
    assert run_cli(["migrate"], env).returncode == 0
    created = run_cli(["create-admin", "--email", ADMIN_EMAIL, "--password", ADMIN_PASSWORD], env)
    assert created.returncode == 0, created.stdout + created.stderr

    server = ServerProcess(tmp_path, env).start()
    try:
        before = await _pair(server.url)
        dump = _postgres_tool("pg_dump", "-Fc", f"--dbname={database_url}")
        after = await _pair(server.url)
        assert await _exchange(server.url, after) == "ok"
    finally:
        server.stop()

    _postgres_tool("pg_restore", f"--dbname={database_url}", "--clean", "--if-exists", stdin=dump)
    restarted = ServerProcess(tmp_path, env).start()
    try:
        assert await _exchange(restarted.url, before) == "ok"
        assert await _exchange(restarted.url, after) == "invalid_credentials"
    finally:
        restarted.stop()
