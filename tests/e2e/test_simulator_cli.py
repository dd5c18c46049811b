"""`python -m simulator` in a subprocess, checked through the admin API; secrets never shown."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from simulator.scenarios import SCENARIOS
from tests.e2e.simulator_fixtures import SHORT_WINDOWS, Target
from tests.harness import REPO_ROOT, ServerProcess, base_env

pytestmark = [pytest.mark.slow]

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
# Waits measured in tens of seconds; the library tests cover them already.
SLOW_SCENARIOS = {"expired-code"}


def simulator(
    args: list[str], env: dict[str, str], cwd: Path, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "simulator", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def sim_env(target: Target | None = None, *, with_admin: bool = True) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("POLARIS_SIM_")}
    env["PYTHONPATH"] = str(REPO_ROOT)
    # No terminal: the status display prints plain lines, never a live panel.
    env["TERM"] = "dumb"
    if target is not None:
        env["POLARIS_SIM_BASE_URL"] = target.device_url
        if with_admin:
            env["POLARIS_SIM_ADMIN_EMAIL"] = target.admin_email
            env["POLARIS_SIM_ADMIN_PASSWORD"] = target.admin_password
    return env


@contextmanager
def admin_api(target: Target) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=target.admin_url, timeout=10) as client:
        login = client.post(
            "/api/v1/auth/login",
            json={"email": target.admin_email, "password": target.admin_password},
        )
        assert login.status_code == 200, login.text
        client.headers["X-CSRF-Token"] = login.json()["csrfToken"]
        yield client


def devices_matching(client: httpx.Client, q: str, **filters: str) -> list[dict[str, Any]]:
    answer = client.get("/api/v1/admin/devices", params={"q": q, "limit": 200, **filters})
    assert answer.status_code == 200, answer.text
    items: list[dict[str, Any]] = answer.json()["items"]
    return items


def stored_secrets(state: Path) -> list[str]:
    data = orjson.loads(state.read_bytes())
    return [
        device[key]
        for server in data["servers"].values()
        for device in server["devices"]
        for key in ("device_token", "device_secret")
    ]


def assert_no_secrets(result: subprocess.CompletedProcess[str], secrets: list[str]) -> None:
    shown = result.stdout + result.stderr
    leaked = [secret[:12] for secret in secrets if secret in shown]
    assert leaked == []


def test_help_names_the_server_and_admin_options() -> None:
    result = simulator(["--help"], sim_env(), REPO_ROOT)
    assert result.returncode == 0, result.stderr
    for option in ("--base-url", "--admin-email", "--admin-password", "--admin-token", "--state"):
        assert option in result.stdout
    for variable in ("POLARIS_SIM_ADMIN_EMAIL", "POLARIS_SIM_ADMIN_PASSWORD"):
        assert variable in result.stdout
    listed = simulator(["scenario"], sim_env(), REPO_ROOT)
    assert listed.returncode == 0
    assert [line.split()[0] for line in listed.stdout.splitlines()] == list(SCENARIOS)


def test_pair_prints_only_the_device_id_and_keeps_credentials_private(
    target: Target, tmp_path: Path
) -> None:
    env = sim_env(target)
    scanned = simulator(["pair", "--profile", "ipad-air", "--serial", "CLI-QR"], env, tmp_path)
    assert scanned.returncode == 0, scanned.stderr
    typed = simulator(["pair", "--typed", "--serial", "CLI-TYPED"], env, tmp_path)
    assert typed.returncode == 0, typed.stderr
    assert "Approved through the admin API" in typed.stderr

    device_ids = [scanned.stdout.strip(), typed.stdout.strip()]
    assert all(UUID.fullmatch(d) for d in device_ids), device_ids
    state = tmp_path / ".polaris-sim.json"
    assert stat.S_IMODE(state.stat().st_mode) == 0o600
    secrets = [*stored_secrets(state), target.admin_password]
    assert len(secrets) == 5
    for result in (scanned, typed):
        assert_no_secrets(result, secrets)
    with admin_api(target) as client:
        for device_id, serial in zip(device_ids, ("CLI-QR", "CLI-TYPED"), strict=True):
            view = client.get(f"/api/v1/admin/devices/{device_id}").json()
            assert (view["state"], view["ownerEmail"]) == ("active", target.admin_email)
            assert view["label"].endswith(serial)


def test_pair_without_admin_credentials_says_what_is_missing(
    target: Target, tmp_path: Path
) -> None:
    result = simulator(["pair"], sim_env(target, with_admin=False), tmp_path)
    assert result.returncode == 2
    assert "POLARIS_SIM_ADMIN_EMAIL" in result.stderr


def test_fleet_pairs_heartbeats_stops_and_resumes(target: Target, tmp_path: Path) -> None:
    seed = f"cli{target.name}"
    args = ["fleet", "--devices", "6", "--heartbeat", "1", "--seed", seed]
    first = simulator([*args, "--duration", "4", "--flaky", "0.05"], sim_env(target), tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "paired 6/6 online" in first.stdout
    assert re.search(r"requests/s \d", first.stdout)
    assert re.search(r"admin API: [1-6] of the fleet's 6 devices online", first.stdout)
    state = tmp_path / ".polaris-sim.json"
    assert stat.S_IMODE(state.stat().st_mode) == 0o600
    assert_no_secrets(first, [*stored_secrets(state), target.admin_password])

    # Resumed from the credentials file: no admin needed, no device paired twice.
    resumed = simulator([*args, "--duration", "3"], sim_env(target, with_admin=False), tmp_path)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "devices: 6 paired of 6" in resumed.stdout
    assert_no_secrets(resumed, stored_secrets(state))
    with admin_api(target) as client:
        fleet = devices_matching(client, f"SIM-{seed}-")
        assert [d["online"] for d in fleet] == [True] * 6


def test_named_scenarios_pass_through_the_cli(target: Target, tmp_path: Path) -> None:
    names = [name for name in SCENARIOS if name not in SLOW_SCENARIOS]
    windows = [
        *("--online-window", str(target.online_window)),
        *("--race-window", str(target.race_window)),
    ]
    result = simulator(["scenario", *names, *windows], sim_env(target), tmp_path, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    for name in names:
        assert f"✓ {name} passed" in result.stdout
    assert target.admin_password not in result.stdout + result.stderr


def clone_scenario(
    target: Target, clone_response: str, cwd: Path
) -> subprocess.CompletedProcess[str]:
    return simulator(
        ["scenario", "clone", "--clone-response", clone_response], sim_env(target), cwd
    )


@pytest.fixture(scope="module")
def revoking_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    """An embedded server that revokes a device whose pair two installs used."""
    workdir = tmp_path_factory.mktemp("sim-revoke")
    env = base_env(workdir, CLONE_RESPONSE="revoke", **SHORT_WINDOWS)
    server = ServerProcess(workdir, env).start()
    try:
        email, password = server.first_admin()
        yield Target("revoke", server.url, server.url, email, password)
    finally:
        server.stop()


def test_the_clone_scenario_checks_the_servers_clone_response(
    target: Target, revoking_target: Target, tmp_path: Path
) -> None:
    """Each setting passes against its own server and fails against the other."""
    flagged = clone_scenario(target, "flag", tmp_path)
    assert flagged.returncode == 0, flagged.stdout + flagged.stderr
    assert "✓ the copy keeps working (CLONE_RESPONSE=flag)" in flagged.stdout
    revoked = clone_scenario(revoking_target, "revoke", tmp_path)
    assert revoked.returncode == 0, revoked.stdout + revoked.stderr
    assert "✓ the original after the revocation: 401 token_revoked" in revoked.stdout

    expected_flag = clone_scenario(revoking_target, "flag", tmp_path)
    assert expected_flag.returncode == 1
    assert "✗ clone failed: the copy keeps working" in expected_flag.stderr
    expected_revoke = clone_scenario(target, "revoke", tmp_path)
    assert expected_revoke.returncode == 1
    assert "✗ clone failed: the copy is refused" in expected_revoke.stderr


def test_pair_with_an_admin_app_token_instead_of_a_password(target: Target, tmp_path: Path) -> None:
    with admin_api(target) as client:
        qr = client.post("/api/v1/admin/app/generate-qr")
        assert qr.status_code == 201, qr.text
    exchange = {
        "token": qr.json()["payload"]["token"],
        "deviceName": "QA phone",
        "platform": "ios",
        "deviceIdentifier": "sim-cli-1",
    }
    with httpx.Client(base_url=target.admin_url, timeout=10) as phone:
        answer = phone.post("/api/v1/admin/app/exchange-token", json=exchange)
        assert answer.status_code == 200, answer.text
    token = answer.json()["accessToken"]
    env = {**sim_env(target, with_admin=False), "POLARIS_SIM_ADMIN_TOKEN": token}
    result = simulator(["pair", "--profile", "mac-mini"], env, tmp_path)
    assert result.returncode == 0, result.stderr
    assert UUID.fullmatch(result.stdout.strip())
    assert token not in result.stdout + result.stderr
