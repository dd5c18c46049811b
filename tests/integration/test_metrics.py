"""`GET /metrics`: what moves when devices pair and heartbeat, when jobs run, and who may look.

The counters live for the whole test process, so each test compares a scrape taken before
with one taken after.
"""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from pydantic import SecretStr
from starlette.applications import Starlette

from app import clock
from app.edge.runtime import runtime
from app.jobs import JobContext, Schedule, schedules
from app.settings import Environment, Settings
from simulator.problems import ProblemError
from simulator.protocol import HEARTBEAT, REGISTER, Credentials, DeviceApi, PkcePair
from tests.factories import SignedInClient
from tests.scanner import DOCK_SCANNER, bearer, scan_body, typed_body
from tests.scrape import Scrape, delta
from tests.wire import assert_problem

pytestmark = pytest.mark.usefixtures("presence_tasks_end_before_shutdown")
METRICS_TOKEN = "metrics-token-for-the-scraper-0123456789"


async def scrape(client: httpx.AsyncClient, token: str | None = None) -> Scrape:
    headers = bearer(token) if token else {}
    response = await client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return Scrape(response.text)


async def test_a_pairing_and_heartbeats_move_the_counters(
    admin: SignedInClient, device_client: httpx.AsyncClient, device_api: DeviceApi
) -> None:
    before = await scrape(admin.client)

    minted = await admin.api.mint_code()
    device = await device_api.register_scanned(
        minted.pairing_uri, pkce=PkcePair.generate(), fields=DOCK_SCANNER
    )
    access = await device_api.access_token(device)
    # The first is judged by the route (a token seen for the first time), the rest by the
    # fast path: both count alike.
    for _ in range(3):
        await device_api.heartbeat(access)
    after = await scrape(admin.client)

    assert delta(before, after, "polaris_pairing_outcomes_total", reason="redeemed") == 1
    assert delta(before, after, "polaris_token_exchanges_total", outcome="issued") == 1
    assert delta(before, after, "polaris_heartbeats_total") == 3
    heartbeats = {"method": "POST", "route": HEARTBEAT, "status": "200"}
    assert delta(before, after, "polaris_http_requests_total", **heartbeats) == 3
    assert (
        delta(
            before,
            after,
            "polaris_http_request_duration_seconds_count",
            method="POST",
            route=HEARTBEAT,
        )
        == 3
    )
    registered = {"method": "POST", "route": REGISTER, "status": "201"}
    assert delta(before, after, "polaris_http_requests_total", **registered) == 1
    assert after.value("polaris_devices_online") == 1
    assert after.value("polaris_backend_up", backend="database") == 1
    assert after.value("polaris_serving_processes") == 1


async def test_routes_are_counted_by_template_not_by_path(
    admin: SignedInClient, device: Credentials
) -> None:
    before = await scrape(admin.client)

    await admin.api.device(device.device_id)
    missing = await admin.client.get("/no/such/page/8f14e45f")
    after = await scrape(admin.client)

    assert missing.status_code == 404
    detail = "/api/v1/admin/devices/{device_id:uuid}"
    assert delta(before, after, "polaris_http_requests_total", route=detail, status="200") == 1
    assert delta(before, after, "polaris_http_requests_total", route="<unmatched>") == 1
    assert device.device_id not in after.text
    assert "8f14e45f" not in after.text


async def test_refused_and_decided_pairings_are_counted_by_reason(
    admin: SignedInClient, device_client: httpx.AsyncClient, device_api: DeviceApi
) -> None:
    before = await scrape(admin.client)

    unknown = await device_client.post(REGISTER, json=typed_body("ZZZZ-ZZZZ"))
    assert_problem(unknown, 400, "invalid_code")
    tampered = await admin.api.mint_code()
    for _ in range(5):
        await device_client.post(
            REGISTER, json=scan_body(tampered.pairing_uri, pairingProof="x" * 43)
        )
    approved = await admin.api.mint_code()
    approved_pkce = PkcePair.generate()
    pending = await device_api.register_typed(
        approved.code, pkce=approved_pkce, fields=DOCK_SCANNER
    )
    await admin.api.approve(approved.pairing_session_id)
    await device_api.poll(pending.pairing_id, approved_pkce.verifier)
    rejected = await admin.api.mint_code()
    await device_api.register_typed(rejected.code, pkce=PkcePair.generate(), fields=DOCK_SCANNER)
    await admin.api.reject(rejected.pairing_session_id)
    after = await scrape(admin.client)

    counted = {
        reason: delta(before, after, "polaris_pairing_outcomes_total", reason=reason)
        for reason in (
            "invalid_code",
            "invalid_proof",
            "session_burned",
            "burned",
            "pending_approval",
            "approved",
            "collected",
            "rejected",
            "redeemed",
        )
    }
    assert counted == {
        "invalid_code": 1,
        "invalid_proof": 4,
        "session_burned": 1,
        "burned": 1,
        "pending_approval": 2,
        "approved": 1,
        "collected": 1,
        "rejected": 1,
        "redeemed": 0,
    }


@pytest.mark.parametrize("settings", [{"redeem_failures_per_ip": "2/minute"}], indirect=True)
async def test_rate_limited_redemptions_are_counted(
    admin: SignedInClient, device_client: httpx.AsyncClient
) -> None:
    before = await scrape(admin.client)

    answers = [await device_client.post(REGISTER, json=typed_body("ZZZZ-ZZZZ")) for _ in range(3)]
    after = await scrape(admin.client)

    assert_problem(answers[-1], 429, "rate_limited")
    assert delta(before, after, "polaris_pairing_outcomes_total", reason="rate_limited") == 1
    assert delta(before, after, "polaris_pairing_outcomes_total", reason="invalid_code") == 2


async def test_refused_token_exchanges_are_counted_by_outcome(
    admin: SignedInClient, device_api: DeviceApi, device: Credentials
) -> None:
    before = await scrape(admin.client)

    forged = Credentials(device.device_id, device.device_token, "x" * len(device.device_secret))
    with pytest.raises(ProblemError) as refused:
        await device_api.access_token(forged)
    assert refused.value.code == "invalid_credentials"
    rotated = await device_api.rotate(device)
    await device_api.access_token(rotated)
    after = await scrape(admin.client)

    assert delta(before, after, "polaris_token_exchanges_total", outcome="invalid_credentials") == 1
    assert delta(before, after, "polaris_token_exchanges_total", outcome="issued") == 1
    for secret in (device.device_secret, rotated.device_secret, rotated.device_token):
        assert secret not in after.text


async def test_jobs_are_counted_and_timed_by_name(app: Starlette, admin: SignedInClient) -> None:
    state = runtime(app)
    context = JobContext(state.settings, state.presence)
    expire = next(s for s in schedules(state.settings) if s.name == "expire_pairing_sessions")

    async def broken(_: JobContext) -> int:
        raise RuntimeError("the database went away")

    before = await scrape(admin.client)
    await admin.api.mint_code()
    clock.advance(timedelta(seconds=state.settings.pairing_code_ttl_seconds + 1))
    assert await expire.run_once(context) == 1
    with pytest.raises(RuntimeError):
        await Schedule("broken", broken, 60).run_once(context)
    after = await scrape(admin.client)

    job = {"job": "expire_pairing_sessions"}
    assert delta(before, after, "polaris_job_runs_total", **job) == 1
    assert delta(before, after, "polaris_job_failures_total", **job) == 0
    assert delta(before, after, "polaris_job_duration_seconds_count", **job) == 1
    assert delta(before, after, "polaris_job_failures_total", job="broken") == 1
    assert delta(before, after, "polaris_pairing_outcomes_total", reason="expired") == 1


async def test_a_revocation_shows_in_the_cache_size(
    admin: SignedInClient, device: Credentials
) -> None:
    detail = await admin.api.device(device.device_id)
    active = next(t for t in detail["tokens"] if t["state"] == "active")
    await admin.api.revoke_token(device.device_id, active["tokenId"])

    after = await scrape(admin.client)

    assert after.value("polaris_revocation_cache_entries") >= 1


@pytest.mark.parametrize("settings", [{"metrics_token": SecretStr(METRICS_TOKEN)}], indirect=True)
async def test_with_a_token_set_a_scrape_must_present_it(client: httpx.AsyncClient) -> None:
    missing = await client.get("/metrics")
    wrong = await client.get("/metrics", headers=bearer("not-the-metrics-token"))
    basic = await client.get("/metrics", headers={"Authorization": f"Basic {METRICS_TOKEN}"})
    allowed = await scrape(client, METRICS_TOKEN)

    for refused in (missing, wrong, basic):
        assert_problem(refused, 401, "not_authenticated")
        assert METRICS_TOKEN not in refused.text
    assert allowed.has("polaris_http_requests_total")


@pytest.mark.parametrize(
    "settings",
    [
        pytest.param({"environment": Environment.PRODUCTION}, id="production-without-token"),
        pytest.param({"metrics_enabled": False}, id="metrics-off"),
    ],
    indirect=True,
)
async def test_not_served_without_a_token_in_production_nor_when_off(
    client: httpx.AsyncClient,
) -> None:
    answer = await client.get("/metrics")

    assert_problem(answer, 404, "not_found")


def test_a_blank_token_in_an_env_file_means_no_token(settings: Settings) -> None:
    blank = Settings.model_validate({**settings.model_dump(), "metrics_token": " "})

    assert blank.metrics_token is None
