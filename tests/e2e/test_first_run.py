"""The README's first command, as a new operator meets it: a real `polaris serve`."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from simulator.protocol import REGISTER
from tests.harness import ServerProcess, base_env
from tests.scanner import scan_body


def test_first_run_prints_working_credentials_once(server: ServerProcess) -> None:
    email, password = server.first_admin()
    assert f"{server.url}/login" in server.output()
    assert httpx.get(f"{server.url}/login").status_code == 200

    with httpx.Client(base_url=server.url) as client:
        login = client.post("/api/v1/auth/login", json={"email": email, "password": password})
        assert login.status_code == 200
        assert login.json()["user"]["role"] == "admin"
        session_cookie = client.cookies["polaris_session"]
        csrf = login.json()["csrfToken"]
        assert client.get("/admin/devices").status_code == 200
        bad = client.post(
            "/api/v1/auth/login", json={"email": email, "password": "wrong-guess-123"}
        )
        assert bad.status_code == 401
    server.stop()

    again = ServerProcess(server.workdir, server.env, port=server.port)
    again.start()
    try:
        with httpx.Client(base_url=again.url) as client:
            relogin = client.post("/api/v1/auth/login", json={"email": email, "password": password})
            assert relogin.status_code == 200
    finally:
        again.stop()
    output = again.output()  # both runs, appended
    assert output.count("Created the first admin") == 1  # the second run reuses the database
    assert output.count("Serving on") == 2

    # Nothing secret in any log line: the password only in the one-time banner, never the
    # session id, the CSRF token or a mistyped password.
    assert output.count(password) == 1
    for secret in (session_cookie, csrf, "wrong-guess-123"):
        assert secret not in output


def _request_lines(
    server: ServerProcess, until: Callable[[list[dict[str, Any]]], bool]
) -> list[dict[str, Any]]:
    """The access-log lines so far, once `until` holds of them: they are written in
    batches, at most 50 ms after their request (a second is plenty)."""
    deadline = time.monotonic() + 2
    while True:
        lines = [json.loads(line) for line in server.output().splitlines() if line.startswith("{")]
        requests = [line for line in lines if line.get("event") == "request"]
        if until(requests) or time.monotonic() > deadline:
            return requests
        time.sleep(0.05)


def _paths(requests: list[dict[str, Any]]) -> list[str]:
    return [str(line["path"]) for line in requests]


def test_readiness_and_request_logs_are_json(server: ServerProcess) -> None:
    response = httpx.get(f"{server.url}/readyz")
    assert response.json() == {"status": "ready", "checks": {"database": True}}

    def logged(requests: list[dict[str, Any]]) -> bool:
        return any(line["path"] == "/readyz" and line.get("request_id") for line in requests)

    assert logged(_request_lines(server, until=logged))


def test_heartbeat_lines_are_like_every_other_request_line(server: ServerProcess) -> None:
    email, password = server.first_admin()
    with httpx.Client(base_url=server.url) as client:
        login = client.post("/api/v1/auth/login", json={"email": email, "password": password})
        minted = client.post(
            "/api/v1/admin/pairing-sessions", headers={"X-CSRF-Token": login.json()["csrfToken"]}
        )
        paired = client.post(REGISTER, json=scan_body(minted.json()["pairingUri"]))
        credentials = {k: paired.json()[k] for k in ("deviceToken", "deviceSecret")}
        access = client.post("/api/devices/token", json=credentials).json()["accessToken"]
        request_ids = [str(uuid.uuid4()) for _ in range(3)]
        for request_id in request_ids:
            beat = client.post(
                "/api/devices/heartbeat",
                json={"appVersion": "2.5.0"},
                headers={"Authorization": f"Bearer {access}", "X-Request-ID": request_id},
            )
            assert beat.status_code == 200, beat.text
            assert beat.headers["x-request-id"] == request_id
        client.get("/readyz")

    requests = _request_lines(server, until=lambda lines: _paths(lines)[-1:] == ["/readyz"])
    beats = [line for line in requests if line["path"] == "/api/devices/heartbeat"]
    assert [line["request_id"] for line in beats] == request_ids
    assert {line["status"] for line in beats} == {200}
    assert all(line.keys() == requests[-1].keys() for line in beats)
    assert access not in server.output()


def test_production_mode_refuses_to_start_without_secret_key(workdir: Path) -> None:
    from tests.harness import run_cli

    result = run_cli(["serve"], base_env(workdir, POLARIS_ENV="production"))
    assert result.returncode == 2
    assert "SECRET_KEY is required" in result.stderr + result.stdout
